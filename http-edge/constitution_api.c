/* constitution_api.c - GET /v1/constitution[/{tenant}[/hash|/document]].
 *
 * Answers from the snapshot only.  The list and metadata answers are JSON;
 * /document returns the verified document's canonical bytes exactly as they
 * were hashed (so `sha3-512(body) == checksum` can be checked by a client),
 * with the checksum in the X-Constitution-Hash header.
 */
#include <stdio.h>
#include <string.h>

#include "edge.h"
#include "gov_alloc.h"
#include "gov_util.h"

static json_t *metadata(const edge_tenant_t *t) {
    const edge_constitution_t *c = &t->constitution;
    json_t *signers = json_array();
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", c->signers ? c->signers : "");
    for (char *save = NULL, *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save))
        json_array_append_new(signers, json_string(s));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:s}", "tenant", t->name, "checksum",
                     c->checksum, "hash_alg", c->hash_alg, "canonicalization", c->canonicalization,
                     "version", c->version, "verified_at_us", (json_int_t)c->verified_at_us,
                     "signers", signers, "source", c->source ? c->source : "");
}

/* 503 until the first load from Redis completed: never answer "not found"
 * for a tenant whose state simply was not read yet. */
static int require_loaded(edge_t *e, edge_response_t *resp) {
    if (edge_state_loaded(e->state))
        return 1;
    edge_respond_error(resp, 503, GOV_REASON_STATE_NOT_LOADED,
                       "the edge has not loaded its state yet");
    return 0;
}

void edge_constitution_list(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    (void)req;
    if (!require_loaded(e, resp))
        return;
    edge_snapshot_t *s = edge_state_acquire(e->state);
    json_t *arr = json_array();
    for (size_t i = 0; i < s->n; i++)
        if (s->tenants[i]->constitution.checksum[0])
            json_array_append_new(arr, metadata(s->tenants[i]));
    edge_respond_json(resp, 200, json_pack("{s:o, s:I}", "constitutions", arr, "generation",
                                           (json_int_t)s->generation));
    edge_snapshot_release(s);
}

void edge_constitution_get(edge_t *e, const edge_request_t *req, edge_response_t *resp) {
    const char *tenant = req->seg[2];
    if (!gov_tenant_valid(tenant, strlen(tenant))) {
        edge_respond_error(resp, 400, GOV_REASON_INVALID_TENANT,
                           "tenant ids are 1-64 chars of [A-Za-z0-9._-]");
        return;
    }
    if (!require_loaded(e, resp))
        return;
    edge_snapshot_t *s = edge_state_acquire(e->state);
    edge_tenant_t *t = edge_snapshot_find(s, tenant);
    if (t == NULL || t->constitution.checksum[0] == '\0') {
        edge_respond_error(resp, 404, GOV_REASON_CONSTITUTION_NOT_FOUND,
                           "no verified constitution for tenant %s", tenant);
        goto out;
    }
    const edge_constitution_t *c = &t->constitution;
    edge_add_header(resp, "X-Constitution-Hash", c->checksum);
    edge_add_header(resp, "ETag", c->checksum);
    if (req->nseg == 3) {
        json_t *m = metadata(t);
        json_object_set(m, "document", c->doc_json);
        edge_respond_json(resp, 200, m);
    } else if (strcmp(req->seg[3], "hash") == 0) {
        edge_respond_json(resp, 200, json_pack("{s:s, s:s, s:s, s:s}", "tenant", t->name,
                                               "checksum", c->checksum, "hash_alg", c->hash_alg,
                                               "version", c->version));
    } else {
        resp->status = 200;
        resp->content_type = "application/json";
        resp->body = gov_strndup(c->doc, c->doc_len);
        resp->body_len = resp->body ? c->doc_len : 0;
        if (resp->body == NULL)
            edge_respond_error(resp, 503, GOV_REASON_OUT_OF_MEMORY, "out of memory");
    }
out:
    edge_snapshot_release(s);
}
