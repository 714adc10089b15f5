/* publish_rulepack - puts a rule pack on policy.rulepacks (RulePackPublished).
 *
 *   publish_rulepack [--brokers B] [--published-by WHO] PACK.json
 *
 * The stand-in bench/run.sh uses while `govctl rulepack publish` does not
 * exist yet; when it does, run.sh uses govctl.  It is the real path all the
 * same: the pack is validated here with gov_rulepack_parse (what
 * gov-rulepacks will do again), the event is the RulePackPublished schema
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
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "b:p:", opts, NULL)) != -1) {
        switch (c) {
        case 'b': brokers = optarg; break;
        case 'p': by = optarg; break;
        default:
            fputs("usage: publish_rulepack [--brokers B] [--published-by WHO] PACK.json\n", stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fputs("usage: publish_rulepack [--brokers B] [--published-by WHO] PACK.json\n", stderr);
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
    char id[GOV_UUID_STRLEN + 1];
    if (gov_uuid_v7(id) != GOV_OK) {
        fprintf(stderr, "publish_rulepack: cannot make an event id\n");
        return 1;
    }
    json_t *ev = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s%, s:s}", "event_id", id, "occurred_at",
                           (json_int_t)gov_now_micros(), "tenant", gov_rulepack_tenant(pack),
                           "pack_id", gov_rulepack_id(pack), "version",
                           gov_rulepack_version(pack), "rulepack_json", text, len,
                           "published_by", by);
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
    gov_rulepack_free(pack);
    free(text);
    return 0;
}
