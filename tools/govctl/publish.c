/* publish.c - govctl's one way of putting an event on a topic.
 *
 * `govctl publish` (constitution.bundles) and `govctl rulepack publish`
 * (policy.rulepacks) end the same way: encode the event in its Avro schema,
 * make a producer, produce keyed by tenant with acks=all, wait for the
 * acknowledgement, print "published <topic> partition=.. offset=..
 * event_id=..".  This file is that ending; each command builds its own event
 * and passes in what differs (topic, schema, what to call the input in a
 * message).
 *
 * librdkafka's own message timeout is set below the acknowledgement wait,
 * so when the wait ends the message has either been acknowledged or
 * definitely failed: never "maybe sent later".
 *
 * What it does not do: build or check events (the commands and libgov do),
 * retry (the operator reruns; the processors recognise a replay by event id
 * and content).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "gov_alloc.h"
#include "gov_avro.h"
#include "gov_kafka.h"
#include "govctl.h"

#define PUBLISH_ACK_TIMEOUT_MS 15000
#define PUBLISH_MESSAGE_TIMEOUT_MS "12000"

int govctl_produce_event(const char *brokers, const char *topic, const char *schema,
                         const char *key, json_t *ev, const char *subject,
                         const char *encode_prefix, int32_t *partition_out,
                         int64_t *offset_out) {
    static const char *const extra_conf[] = {"message.timeout.ms", PUBLISH_MESSAGE_TIMEOUT_MS,
                                             NULL};
    char eb[512] = "";
    unsigned char *msg = NULL;
    size_t msg_len = 0;
    gov_avro_registry_t *reg = NULL;
    gov_kafka_producer_t *p = NULL;
    int32_t partition = -1;
    int64_t offset = -1;
    int rc = GOVCTL_FAIL;
    gov_err_t err;
    if ((err = gov_avro_registry_new(&reg, eb, sizeof eb)) != GOV_OK) {
        rc = govctl_fail_clean(GOV_REASON_INTERNAL_ERROR, "schemas: %s", eb);
        goto out;
    }
    if ((err = gov_avro_encode(reg, schema, ev, &msg, &msg_len, eb, sizeof eb)) != GOV_OK) {
        rc = govctl_fail_clean(err == GOV_ERR_TOO_LARGE ? GOV_REASON_TOO_LARGE
                                                        : GOV_REASON_INTERNAL_ERROR,
                               "%s%s%s", encode_prefix ? encode_prefix : "",
                               encode_prefix ? ": " : "", eb);
        goto out;
    }
    if ((err = gov_kafka_producer_new(brokers, "govctl", extra_conf, &p, eb, sizeof eb)) !=
        GOV_OK) {
        rc = govctl_fail_clean(GOV_REASON_KAFKA_UNAVAILABLE, "producer for %s: %s", brokers, eb);
        goto out;
    }
    err = gov_kafka_produce_sync(p, topic, key, strlen(key), msg, msg_len, NULL, 0,
                                 PUBLISH_ACK_TIMEOUT_MS, &partition, &offset, eb, sizeof eb);
    if (err != GOV_OK) {
        rc = govctl_fail_clean(GOV_REASON_KAFKA_UNAVAILABLE, "%s was not acknowledged by %s: %s",
                               subject, brokers, eb);
        goto out;
    }
    *partition_out = partition;
    *offset_out = offset;
    rc = GOVCTL_OK;
out:
    gov_kafka_producer_free(p, 2000);
    gov_avro_registry_free(reg);
    gov_free(msg);
    return rc;
}

int govctl_publish_event(const char *brokers, const char *topic, const char *schema,
                         const char *tenant, json_t *ev, const char *event_id,
                         const char *subject, const char *encode_prefix) {
    int32_t partition = -1;
    int64_t offset = -1;
    int rc = govctl_produce_event(brokers, topic, schema, tenant, ev, subject, encode_prefix,
                                  &partition, &offset);
    if (rc != GOVCTL_OK)
        return rc;
    printf("published %s partition=%d offset=%lld event_id=%s\n", topic, (int)partition,
           (long long)offset, event_id);
    return govctl_finish_stdout(GOVCTL_OK);
}
