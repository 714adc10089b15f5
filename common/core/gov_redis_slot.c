/* gov_redis_slot.c - Redis Cluster hash slots, redirect replies, slot map.
 *
 * What: the socket-free half of the cluster client (gov_redis_cluster.c is
 * the other half).  How: the CRC is the bitwise CRC16-XMODEM (keys are
 * short; a table would save nothing measurable); the redirect parser walks
 * the text once with explicit bounds; the slot map is a flat array of 16384
 * node indexes plus a small node table, so a lookup is one load.
 * What it does not do: talk to Redis, decide when to refresh the map, or
 * know about replicas (only masters serve our commands).
 */
#include "gov_redis_slot.h"

#include <stdio.h>
#include <string.h>

#include "gov_alloc.h"

uint16_t gov_crc16_xmodem(const void *data, size_t len) {
    const unsigned char *p = data;
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned gov_redis_key_slot(const void *key, size_t len) {
    const char *k = key;
    const char *open = len ? memchr(k, '{', len) : NULL;
    if (open != NULL) {
        size_t from = (size_t)(open - k) + 1;
        const char *close = memchr(k + from, '}', len - from);
        /* an empty tag ("{}") does not count: the whole key is hashed */
        if (close != NULL && close > k + from)
            return gov_crc16_xmodem(k + from, (size_t)(close - (k + from))) % GOV_REDIS_SLOTS;
    }
    return gov_crc16_xmodem(k, len) % GOV_REDIS_SLOTS;
}

/* Reads a decimal without sign or leading zero from s[*i..len) into *v,
 * refusing more than max.  1 on success. */
static int read_decimal(const char *s, size_t len, size_t *i, long max, long *v) {
    size_t start = *i;
    long acc = 0;
    while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
        acc = acc * 10 + (s[*i] - '0');
        if (acc > max)
            return 0;
        (*i)++;
    }
    if (*i == start || (s[start] == '0' && *i - start > 1))
        return 0;
    *v = acc;
    return 1;
}

gov_err_t gov_redis_redirect_parse(const char *text, size_t len, gov_redis_redirect_t *out,
                                   char *errbuf, size_t errbuf_size) {
    memset(out, 0, sizeof *out);
    size_t i;
    if (len >= 6 && memcmp(text, "MOVED ", 6) == 0) {
        out->kind = GOV_REDIS_REDIRECT_MOVED;
        i = 6;
    } else if (len >= 4 && memcmp(text, "ASK ", 4) == 0) {
        out->kind = GOV_REDIS_REDIRECT_ASK;
        i = 4;
    } else {
        return GOV_ERR_NOT_FOUND;
    }
    long slot = 0, port = 0;
    if (!read_decimal(text, len, &i, GOV_REDIS_SLOTS - 1, &slot) || i >= len || text[i] != ' ') {
        snprintf(errbuf, errbuf_size, "redirect: no slot 0..16383 followed by one space");
        goto bad;
    }
    i++;
    /* the endpoint is the rest: host, its last ':', the port */
    size_t ep = i, colon = len;
    for (size_t j = ep; j < len; j++) {
        unsigned char c = (unsigned char)text[j];
        if (c <= ' ' || c >= 0x7f) {
            snprintf(errbuf, errbuf_size, "redirect: a space or control byte in the endpoint");
            goto bad;
        }
        if (c == ':')
            colon = j;
    }
    if (colon == len) {
        snprintf(errbuf, errbuf_size, "redirect: the endpoint has no ':<port>'");
        goto bad;
    }
    size_t host_len = colon - ep;
    if (host_len > GOV_REDIS_HOST_MAX) {
        snprintf(errbuf, errbuf_size, "redirect: host longer than %d bytes", GOV_REDIS_HOST_MAX);
        goto bad;
    }
    i = colon + 1;
    if (!read_decimal(text, len, &i, 65535, &port) || i != len || port == 0) {
        snprintf(errbuf, errbuf_size, "redirect: port is not 1..65535 ending the reply");
        goto bad;
    }
    memcpy(out->host, text + ep, host_len);
    out->host[host_len] = 0;
    out->slot = (unsigned)slot;
    out->port = (int)port;
    return GOV_OK;
bad:
    memset(out, 0, sizeof *out);
    return GOV_ERR_PARSE;
}

struct gov_redis_slotmap {
    int16_t slot_node[GOV_REDIS_SLOTS];
    int nnodes;
    struct {
        char host[GOV_REDIS_HOST_MAX + 1];
        int port;
    } node[GOV_REDIS_SLOTMAP_NODES_MAX];
};

gov_redis_slotmap_t *gov_redis_slotmap_new(void) {
    gov_redis_slotmap_t *m = gov_malloc(sizeof *m);
    if (m != NULL)
        gov_redis_slotmap_clear(m);
    return m;
}

void gov_redis_slotmap_free(gov_redis_slotmap_t *m) {
    gov_free(m);
}

void gov_redis_slotmap_clear(gov_redis_slotmap_t *m) {
    for (unsigned s = 0; s < GOV_REDIS_SLOTS; s++)
        m->slot_node[s] = GOV_REDIS_NO_NODE;
    m->nnodes = 0;
}

gov_err_t gov_redis_slotmap_assign(gov_redis_slotmap_t *m, unsigned start, unsigned end,
                                   const char *host, int port, char *errbuf,
                                   size_t errbuf_size) {
    size_t hl = host ? strnlen(host, GOV_REDIS_HOST_MAX + 1) : 0;
    if (start > end || end >= GOV_REDIS_SLOTS || hl == 0 || hl > GOV_REDIS_HOST_MAX ||
        port < 1 || port > 65535) {
        snprintf(errbuf, errbuf_size, "slot range %u-%u at %.64s:%d is not a valid assignment",
                 start, end, host ? host : "(null)", port);
        return GOV_ERR_INVALID_ARG;
    }
    int n;
    for (n = 0; n < m->nnodes; n++)
        if (m->node[n].port == port && strcmp(m->node[n].host, host) == 0)
            break;
    if (n == m->nnodes) {
        if (m->nnodes == GOV_REDIS_SLOTMAP_NODES_MAX) {
            snprintf(errbuf, errbuf_size, "more than %d cluster masters",
                     GOV_REDIS_SLOTMAP_NODES_MAX);
            return GOV_ERR_TOO_LARGE;
        }
        memcpy(m->node[n].host, host, hl + 1);
        m->node[n].port = port;
        m->nnodes++;
    }
    for (unsigned s = start; s <= end; s++)
        m->slot_node[s] = (int16_t)n;
    return GOV_OK;
}

int gov_redis_slotmap_node(const gov_redis_slotmap_t *m, unsigned slot) {
    return slot < GOV_REDIS_SLOTS ? m->slot_node[slot] : GOV_REDIS_NO_NODE;
}

const char *gov_redis_slotmap_node_host(const gov_redis_slotmap_t *m, int i, int *port) {
    if (i < 0 || i >= m->nnodes)
        return NULL;
    if (port)
        *port = m->node[i].port;
    return m->node[i].host;
}

int gov_redis_slotmap_nodes(const gov_redis_slotmap_t *m) {
    return m->nnodes;
}

unsigned gov_redis_slotmap_covered(const gov_redis_slotmap_t *m) {
    unsigned n = 0;
    for (unsigned s = 0; s < GOV_REDIS_SLOTS; s++)
        n += m->slot_node[s] != GOV_REDIS_NO_NODE;
    return n;
}
