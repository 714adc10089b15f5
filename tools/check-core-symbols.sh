#!/usr/bin/env bash
# Checks that libgov_core.a is pure: it may call OpenSSL's crypto, jansson,
# avro-c, Vectorscan and the pure part of libc, and nothing that reads a
# clock, draws randomness, touches a file or a socket, or belongs to an I/O
# library (librdkafka, hiredis, libmicrohttpd, libcurl).
#
#   tools/check-core-symbols.sh build/release/libgov_core.a
#
# Every symbol the archive uses and does not define must match ALLOWED and
# must not match DENIED; the offenders are printed with the object that uses
# them. Exit 0 clean, 1 offenders, 2 usage.
set -uo pipefail
lib=${1:-}
if [ -z "$lib" ] || [ ! -f "$lib" ]; then
    echo "usage: $0 LIBGOV_CORE.a" >&2
    exit 2
fi

# Libraries core links (and the sanitizers' hooks of the ASan build), by
# symbol prefix; the linker's own GOT symbol (a module that takes the address
# of another module's function refers to it: no call, no I/O); then libc
# functions that do no I/O.
ALLOWED='^(_GLOBAL_OFFSET_TABLE_$|__asan_|__ubsan_|__sanitizer_|avro_|json_|jansson_|hs_|EVP_|BIO_new_mem_buf$|BIO_free$|PEM_read_bio_PUBKEY$|PEM_read_bio_PrivateKey$|OPENSSL_|CRYPTO_|ERR_|OSSL_|__assert_fail$|__ctype_(b|tolower|toupper)_loc$|__stack_chk_fail$|__errno_location$|__isoc99_sscanf$|__isoc23_strto|(mem|str|wcs)[a-z]*$|strto[a-z]*$|(v?s|v?sn)printf$|sscanf$|qsort$|bsearch$|abort$|(m|c|re)alloc$|free$|ldexp$|frexp$|nextafter$|floor$|ceil$|fabs$|modf$|pow$|isnan$|__fpclassify$|toupper$|tolower$)'
# Within the allowed families, what still does I/O, reads a clock or draws
# randomness.
DENIED='^(json_(load|dump)(_file|f|fd)$|json_dump_callback$|json_load_callback$|avro_(file_|reader_file|writer_file)|BIO_new_(file|fd|socket|connect|accept)|BIO_s_(file|fd|socket)|RAND_|EVP_RAND|OSSL_(PROVIDER|LIB_CTX_load)|OPENSSL_(init_crypto|load_builtin))'

defined=$(nm -g --defined-only "$lib" 2>/dev/null | awk 'NF==3{print $3}' | sort -u)
bad=0
while read -r obj sym; do
    [ -n "$sym" ] || continue
    if grep -qxF "$sym" <<<"$defined"; then
        continue
    fi
    if ! [[ $sym =~ $ALLOWED ]] || [[ $sym =~ $DENIED ]]; then
        echo "core calls $sym (in $obj): not pure; move the call to common/runtime/" >&2
        bad=1
    fi
done < <(nm -u -A "$lib" 2>/dev/null | awk '{n=split($1,a,":"); print a[n-1], $NF}' | sort -u)
if [ "$bad" -ne 0 ]; then
    exit 1
fi
echo "libgov_core.a is pure: $(nm -u "$lib" | awk 'NF==2{print $2}' | sort -u | wc -l) external symbols, all allowed"
