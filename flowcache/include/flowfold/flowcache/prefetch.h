#pragma once
// A prefetch the compiler cannot drop. g++ 12 at -O2 silently removes
// __builtin_prefetch when its address is computed from a value just loaded
// from memory (exactly the slot -> entry pattern of the flow table); the
// inline-assembly form is kept as written.

namespace flowfold {

inline void prefetchRead(const void* p) {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 0, 3);
#endif
}

inline void prefetchWrite(const void* p) {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 1, 3);
#endif
}

}  // namespace flowfold
