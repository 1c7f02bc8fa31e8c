/* SHA-256: the FIPS 180-2 example vectors, padding boundaries (55/56/63/64/119 bytes, checked
 * against coreutils sha256sum), streaming in odd chunk sizes, and hashing a file. */
#include "base/sha256.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void hex_of_repeated(char ch, size_t n, char out[65]) {
    char *buf = malloc(n ? n : 1);
    memset(buf, ch, n);
    sha256_hex(buf, n, out);
    free(buf);
}

int main(void) {
    char hex[65];

    /* FIPS test vectors */
    sha256_hex("", 0, hex);
    CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex("abc", 3, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CHECK_EQ(strlen(m448) * 8, 448);
    sha256_hex(m448, strlen(m448), hex);
    CHECK_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 =
        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
        "klmnopqrlmnopqrsmnopqrstnopqrstu";
    sha256_hex(m896, strlen(m896), hex);
    CHECK_STR(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    hex_of_repeated('a', 1000000, hex);
    CHECK_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

    /* padding boundaries: 55 fits one block, 56..63 need a second one, 64 is exactly a block */
    hex_of_repeated('a', 55, hex);
    CHECK_STR(hex, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
    hex_of_repeated('a', 56, hex);
    CHECK_STR(hex, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
    hex_of_repeated('a', 63, hex);
    CHECK_STR(hex, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34");
    hex_of_repeated('a', 64, hex);
    CHECK_STR(hex, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
    hex_of_repeated('a', 119, hex);
    CHECK_STR(hex, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb");

    /* million 'a' fed in chunks of 1, 7, 63, 64, 65, ... must match the one-shot digest */
    {
        static char chunk[1000];
        memset(chunk, 'a', sizeof chunk);
        const size_t sizes[] = {1, 7, 63, 64, 65, 999};
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            sha256_ctx c;
            sha256_init(&c);
            size_t left = 1000000;
            while (left) {
                size_t n = left < sizes[k] ? left : sizes[k];
                sha256_update(&c, chunk, n);
                left -= n;
            }
            uint8_t d[32];
            sha256_final(&c, d);
            CHECK_EQ(d[0], 0xcd);
            CHECK_EQ(d[31], 0xd0);
        }
    }

    /* a file: "abc" written to a temporary file */
    {
        char path[] = "/tmp/hdlm_test_sha256_XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0);
        if (fd >= 0) {
            CHECK_EQ(write(fd, "abc", 3), 3);
            close(fd);
            error e = {0};
            CHECK_EQ(sha256_hex_file(path, hex, &e), HDLM_OK);
            CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
            unlink(path);
            CHECK_EQ(sha256_hex_file(path, hex, &e), HDLM_EIO);
            CHECK_CONTAINS(e.msg, path);
            CHECK_CONTAINS(e.msg, "No such file");
        }
    }

    return check_report("test_sha256");
}
