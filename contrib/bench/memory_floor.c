/* contrib/bench/memory_floor: owns the memory floor the matrix prints beside the idle
 * service. Linked (by contrib/bench/matrix) against exactly the libraries the measured
 * binary names in its DT_NEEDED, it does with OpenSSL what every instance does before its
 * first answer (an HMAC-SHA256 as for a JWT, random bytes, an AES-256-CBC decryption, a
 * scrypt derivation), prints "ready" and sleeps. Its PSS is what the libraries and OpenSSL
 * cost a process that serves nothing: the service's own code and state come on top.
 *
 *   memory_floor SECONDS */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    unsigned char key[32] = {0}, iv[16] = {0}, buf[64];
    size_t mac_len = 0;
    int n = 0;
    if (argc != 2)
        return 2;
    if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, "key", 3, (const unsigned char *)"header.payload", 14,
                   buf, sizeof buf, &mac_len) ||
        RAND_bytes(buf, 16) != 1)
        return 1;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx || EVP_DecryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, key, iv) != 1)
        return 1;
    EVP_CIPHER_CTX_set_padding(ctx, 0);
    if (EVP_DecryptUpdate(ctx, buf, &n, buf, 16) != 1)
        return 1;
    EVP_CIPHER_CTX_free(ctx);
    if (EVP_PBE_scrypt("password", 8, (const unsigned char *)"salt", 4, 1024, 8, 1, 0, key, sizeof key) != 1)
        return 1;
    printf("ready\n");
    fflush(stdout);
    sleep((unsigned)atoi(argv[1]));
    return 0;
}
