#include "agent/bare/rng.h"

static uint64_t g_rng[4];

uint64_t kf_splitmix64(uint64_t* x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t kf_rng_next(void) {
  uint64_t* s = g_rng;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

void kf_rng_mix(uint64_t material) {
  uint64_t x = material;
  for (int i = 0; i < 4; ++i) g_rng[i] ^= kf_splitmix64(&x);
  if ((g_rng[0] | g_rng[1] | g_rng[2] | g_rng[3]) == 0) g_rng[0] = 1;
}
