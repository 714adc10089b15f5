/* cmd_audit.c - `govctl audit verify --tenant T`.
 *
 * Walks audit:{T} from the first entry in pages of 500 (gov_state's XRANGE
 * with an exclusive start), recomputes every entry's hash from its fields
 * and checks its link to the entry before it, then checks that
 * audit:{T}:head names the last entry (so a truncated tail is found too).
 * Reports the first break and exits 1, or the chain's length and head and
 * exits 0.  Memory is bounded by one page whatever the chain's length.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gov_audit_chain.h"
#include "gov_redis.h"
#include "gov_state.h"
#include "gov_util.h"
#include "govctl.h"

static const char *field(redisReply *fields, const char *name, size_t *len) {
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0 &&
            v->type == REDIS_REPLY_STRING) {
            if (len)
                *len = v->len;
            return v->str;
        }
    }
    return NULL;
}

static int audit_verify(const char *tenant, const char *host, int port, int quiet) {
    char eb[512], key[GOV_STATE_KEY_MAX], head_key[GOV_STATE_KEY_MAX], start[80] = "-";
    char prev[GOV_SHA256_HEXLEN + 1] = GOV_AUDIT_GENESIS;
    uint64_t seq = 0;
    gov_redis_t *r = NULL;
    int rc = GOVCTL_OK;
    if (gov_redis_new(host, port, 5000, &r, eb, sizeof eb) != GOV_OK) {
        gov_redis_free(r);
        return govctl_fail(GOV_REASON_REDIS_UNAVAILABLE, "%s", eb);
    }
    if (gov_state_key(GOV_STATE_AUDIT, tenant, key) != GOV_OK ||
        gov_state_key(GOV_STATE_AUDIT_HEAD, tenant, head_key) != GOV_OK) {
        rc = govctl_usage("not a tenant id: %s", tenant);
        goto out;
    }
    for (;;) {
        redisReply *page = NULL;
        if (gov_state_audit_range(r, tenant, start, 500, &page, eb, sizeof eb) != GOV_OK) {
            rc = govctl_fail(GOV_REASON_REDIS_ERROR, "%s", eb);
            goto out;
        }
        if (page->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(page);
            rc = govctl_fail(GOV_REASON_REDIS_ERROR, "%s is not a stream", key);
            goto out;
        }
        size_t n = page->elements;
        for (size_t i = 0; i < n; i++) {
            redisReply *ent = page->element[i];
            char id[64];
            snprintf(id, sizeof id, "%s", ent->element[0]->str);
            redisReply *f = ent->element[1];
            size_t plen = 0;
            const char *s_seq = field(f, "seq", NULL), *s_at = field(f, "occurred_at", NULL);
            gov_audit_entry_t e = {
                .prev_hash = field(f, "prev_hash", NULL),
                .seq = s_seq ? strtoull(s_seq, NULL, 10) : 0,
                .event_id = field(f, "event_id", NULL),
                .type = field(f, "type", NULL),
                .occurred_at = s_at ? strtoll(s_at, NULL, 10) : 0,
                .source = field(f, "source", NULL),
                .payload = field(f, "payload", &plen),
                .payload_len = plen,
            };
            const char *stored = field(f, "hash", NULL);
            gov_audit_break_t b = (e.event_id && e.type && e.source && e.payload && s_seq && s_at)
                ? gov_audit_chain_check(&e, stored, prev, seq + 1) : GOV_AUDIT_MALFORMED;
            if (b != GOV_AUDIT_INTACT) {
                printf("BROKEN tenant=%s entry=%s position=%" PRIu64 " reason=%s\n", tenant,
                       id, seq + 1, gov_audit_break_str(b));
                freeReplyObject(page);
                rc = govctl_fail(GOV_REASON_CHAIN_BROKEN,
                                 "audit chain of %s breaks at entry %s (position %" PRIu64 "): %s",
                                 tenant, id, seq + 1, gov_audit_break_str(b));
                goto out;
            }
            memcpy(prev, stored, sizeof prev);
            seq++;
            snprintf(start, sizeof start, "(%s", id);
        }
        freeReplyObject(page);
        if (n < 500)
            break;
    }
    redisReply *head = NULL;
    if (gov_state_audit_head_read(r, tenant, &head, eb, sizeof eb) != GOV_OK) {
        rc = govctl_fail(GOV_REASON_REDIS_ERROR, "%s", eb);
        goto out;
    }
    const char *hh = head->element[0]->type == REDIS_REPLY_STRING ? head->element[0]->str : NULL;
    const char *hs = head->element[1]->type == REDIS_REPLY_STRING ? head->element[1]->str : NULL;
    int head_ok = (seq == 0 && hh == NULL) ||
                  (hh && hs && strcmp(hh, prev) == 0 && strtoull(hs, NULL, 10) == seq);
    if (!head_ok) {
        printf("BROKEN tenant=%s position=%" PRIu64 " reason=head does not match the last entry\n",
               tenant, seq);
        rc = govctl_fail(GOV_REASON_CHAIN_TRUNCATED,
                         "%s is seq %s hash %s but the stream ends at seq %" PRIu64 " hash %s",
                         head_key, hs ? hs : "(none)", hh ? hh : "(none)", seq, prev);
    } else if (!quiet) {
        printf("OK tenant=%s entries=%" PRIu64 " head=%s\n", tenant, seq, prev);
    }
    freeReplyObject(head);
out:
    gov_redis_free(r);
    return rc;
}

int govctl_cmd_audit(int argc, char **argv) {
    static const char *help =
        "govctl audit verify --tenant T [--redis-host H] [--redis-port P] [--quiet]";
    if (argc < 2 || strcmp(argv[1], "verify") != 0)
        return govctl_usage("%s", help);
    const char *tenant = NULL;
    const char *host = govctl_env("GOV_REDIS_HOST", "127.0.0.1");
    int port = atoi(govctl_env("GOV_REDIS_PORT", "6390"));
    int quiet = 0;
    static const struct option opts[] = {
        {"tenant", required_argument, NULL, 't'},
        {"redis-host", required_argument, NULL, 'H'},
        {"redis-port", required_argument, NULL, 'P'},
        {"quiet", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc - 1, argv + 1, "t:H:P:q", opts, NULL)) != -1) {
        switch (c) {
        case 't': tenant = optarg; break;
        case 'H': host = optarg; break;
        case 'P': port = atoi(optarg); break;
        case 'q': quiet = 1; break;
        default: return govctl_usage("%s", help);
        }
    }
    if (tenant == NULL || !gov_tenant_valid(tenant, strlen(tenant)))
        return govctl_usage("%s (a valid --tenant is required)", help);
    if (port <= 0 || port > 65535)
        return govctl_usage("--redis-port must be 1..65535");
    return audit_verify(tenant, host, port, quiet);
}
