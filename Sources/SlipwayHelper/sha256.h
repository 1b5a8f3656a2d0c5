// SHA-256 (FIPS 180-4) for slipway-helper: content hashes of the manifest and the helper's own
// identity. Written for this project; no library.
#ifndef SLIPWAY_HELPER_SHA256_H
#define SLIPWAY_HELPER_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t state[8];
    uint64_t length;  // bytes hashed so far
    uint8_t block[64];
    size_t used;  // bytes in `block`
} sha256_context;

void sha256_init(sha256_context *context);
void sha256_update(sha256_context *context, const void *data, size_t size);
void sha256_final(sha256_context *context, uint8_t digest[32]);

#endif
