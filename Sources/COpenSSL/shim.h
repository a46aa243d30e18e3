#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/crypto.h>

/* OPENSSL_free is a function-like macro; Swift cannot import it. */
static inline void copenssl_free(void *ptr) { OPENSSL_free(ptr); }

#endif
