/* publish_rulepack - puts a rule pack on policy.rulepacks (RulePackPublished).
 *
 *   publish_rulepack [--brokers B] [--published-by WHO] --sigs SIGFILE PACK.json
 *
 * A stand-alone publisher for benchmarks that must not depend on govctl
 * (bench/run.sh uses `govctl rulepack sign` and `govctl rulepack publish`).
 * It is the real path all the same: the pack is validated here with
 * gov_rulepack_parse (what gov-rulepacks will do again), its detached
 * signatures come from SIGFILE as `govctl rulepack sign` writes it
 * ({"pack_sha256", "signatures"}: gov-rulepacks refuses an unsigned pack)
 * and must be of this pack's digest, the event is the RulePackPublished schema
 * (gov_avro_encode, single-object encoding), produced with acks=all to
 * policy.rulepacks keyed by the tenant (gov_kafka_produce_sync), and
 * gov-rulepacks validates, materializes and announces it as it would any
 * other publication.
 *
 * Brokers: --brokers, else $GOV_KAFKA_BROKERS (var/stack.env), else
 * 127.0.0.1:19092.  Exit 0 when the broker acknowledged the event.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "gov_alloc.h"
#include "gov_avro.h"
#include "gov_kafka.h"
#include "gov_rulepack.h"
#include "gov_time.h"
#include "gov_util.h"

int main(int argc, char **argv) {
    const char *brokers = getenv("GOV_KAFKA_BROKERS"), *by = "bench/publish_rulepack";
    static const struct option opts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"published-by", required_argument, NULL, 'p'},
        {"sigs", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    const char *sigfile = NULL;
    static const char *const usage =
        "usage: publish_rulepack [--brokers B] [--published-by WHO] --sigs SIGFILE PACK.json\n";
    int c;
    while ((c = getopt_long(argc, argv, "b:p:s:", opts, NULL)) != -1) {
        switch (c) {
        case 'b': brokers = optarg; break;
        case 'p': by = optarg; break;
        case 's': sigfile = optarg; break;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind != argc - 1 || sigfile == NULL) {
        fputs(usage, stderr);
        return 2;
    }
    if (brokers == NULL || *brokers == '\0')
        brokers = "127.0.0.1:19092";
    gov_alloc_install_jansson();

    size_t len = 0;
    char *text = bu_read_file(argv[optind], &len), eb[512] = "";
    if (text == NULL)
        return 1;
    gov_rulepack_t *pack = NULL;
    if (gov_rulepack_parse(text, len, NULL, &pack, NULL, eb, sizeof eb) != GOV_OK) {
        fprintf(stderr, "publish_rulepack: %s: %s\n", argv[optind], eb);
        return 1;
    }
    size_t slen = 0;
    char *stext = bu_read_file(sigfile, &slen), hex[GOV_SHA256_HEXLEN + 1];
    json_t *sdoc = stext ? json_loadb(stext, slen, JSON_REJECT_DUPLICATES, NULL) : NULL;
    free(stext);
    const char *signed_sha = json_string_value(json_object_get(sdoc, "pack_sha256"));
    if (gov_rulepack_digest_hex(pack, hex) != GOV_OK || signed_sha == NULL ||
        strcmp(signed_sha, hex) != 0 || !json_is_array(json_object_get(sdoc, "signatures"))) {
        fprintf(stderr, "publish_rulepack: %s holds no signatures of this pack (sha256 %s): "
                        "govctl rulepack sign it\n", sigfile, hex);
        return 1;
    }
    char id[GOV_UUID_STRLEN + 1];
    if (gov_uuid_v7(id) != GOV_OK) {
        fprintf(stderr, "publish_rulepack: cannot make an event id\n");
        return 1;
    }
    json_t *ev = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s%, s:s, s:O}", "event_id", id,
                           "occurred_at", (json_int_t)gov_now_micros(), "tenant",
                           gov_rulepack_tenant(pack), "pack_id", gov_rulepack_id(pack), "version",
                           gov_rulepack_version(pack), "rulepack_json", text, len,
                           "published_by", by, "signatures",
                           json_object_get(sdoc, "signatures"));
    gov_avro_registry_t *reg = NULL;
    unsigned char *msg = NULL;
    size_t mlen = 0;
    gov_kafka_producer_t *p = NULL;
    static const char *const extra[] = {"message.timeout.ms", "12000", NULL};
    int32_t part = -1;
    int64_t off = -1;
    const char *tenant = gov_rulepack_tenant(pack);
    if (ev == NULL || gov_avro_registry_new(&reg, eb, sizeof eb) != GOV_OK ||
        gov_avro_encode(reg, "RulePackPublished", ev, &msg, &mlen, eb, sizeof eb) != GOV_OK ||
        gov_kafka_producer_new(brokers, "bench-publish-rulepack", extra, &p, eb, sizeof eb) !=
            GOV_OK ||
        gov_kafka_produce_sync(p, "policy.rulepacks", tenant, strlen(tenant), msg, mlen, NULL, 0,
                               15000, &part, &off, eb, sizeof eb) != GOV_OK) {
        fprintf(stderr, "publish_rulepack: %s\n", eb[0] ? eb : "cannot build the event");
        return 1;
    }
    printf("published policy.rulepacks partition=%d offset=%lld event_id=%s tenant=%s "
           "pack_id=%s version=%s\n",
           (int)part, (long long)off, id, tenant, gov_rulepack_id(pack),
           gov_rulepack_version(pack));
    gov_kafka_producer_free(p, 2000);
    gov_avro_registry_free(reg);
    gov_free(msg);
    json_decref(ev);
    json_decref(sdoc);
    gov_rulepack_free(pack);
    free(text);
    return 0;
}
