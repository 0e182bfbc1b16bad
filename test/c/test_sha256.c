/*
** test_sha256.c — SHA-256 against the examples NIST publishes for FIPS 180-4
** (the "SHA256.pdf" example set and the long-message test of the Secure
** Hash Standard validation), fed whole and in uneven pieces, so block
** boundaries and the padding's two cases (a final block with and without
** room for the length) are all crossed.
*/
#include "check.h"
#include "lib.h"

/* The digest of msg (n bytes) fed in pieces of step bytes (0: all at once). */
static const char *digestOf(const void *msg, size_t n, size_t step, char out[65]){
  Sha256 s;
  uint8_t d[32];
  sha256Init(&s);
  const uint8_t *p = msg;
  if( step==0 ) step = n ? n : 1;
  for(size_t off = 0; off < n; off += step) sha256Update(&s, p + off, n - off < step ? n - off : step);
  sha256Final(&s, d);
  sha256Hex(d, out);
  return out;
}

static const struct { const char *msg, *digest; } vectors[] = {
  { "",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
  { "abc",
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
  { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",          /* 448 bits */
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
  { "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
    "klmnopqrlmnopqrsmnopqrstnopqrstu",                                   /* 896 bits */
    "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
};

TEST(sha256_should_match_the_nist_examples_whole_and_in_pieces){
  static const size_t steps[] = { 0, 1, 3, 63, 64, 65 };
  char out[65];
  for(size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++){
    for(size_t k = 0; k < sizeof steps / sizeof steps[0]; k++){
      CHECK_STR_EQ(digestOf(vectors[i].msg, strlen(vectors[i].msg), steps[k], out), vectors[i].digest);
    }
  }
}

TEST(sha256_should_match_the_nist_million_a_message){
  static char a[1000000];
  memset(a, 'a', sizeof a);
  char out[65];
  CHECK_STR_EQ(digestOf(a, sizeof a, 0, out),
               "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  CHECK_STR_EQ(digestOf(a, sizeof a, 997, out),
               "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(sha256_should_pad_messages_ending_at_every_offset_of_a_block){
  /* Lengths 55, 56 and 64 put the length field in the same block, in a new
  ** one, and after a full block: each digest must not depend on how the
  ** message was cut (the NIST examples above pin the values: 448 bits is
  ** the 56-byte case, 896 bits the 112-byte one). */
  static const size_t lengths[] = { 55, 56, 57, 63, 64, 65, 119, 120 };
  char m[128];
  memset(m, 'x', sizeof m);
  char whole[65], bytewise[65];
  for(size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++){
    CHECK_STR_EQ(digestOf(m, lengths[i], 0, whole), digestOf(m, lengths[i], 1, bytewise));
  }
}

TEST_MAIN(NULL)
