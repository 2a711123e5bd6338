/* TEST ONLY, never shipped: wine 8.0 lacks bcryptprimitives!ProcessPrng, which every current
   Rust std on Windows imports, so any Rust .exe exits at once under it. This stand-in fills
   the buffer from advapi32's RtlGenRandom (SystemFunction036). */
#include <windows.h>

typedef BOOLEAN(WINAPI *gen_random)(PVOID, ULONG);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    static gen_random gen;
    if (!gen) {
        gen = (gen_random)GetProcAddress(LoadLibraryA("advapi32.dll"), "SystemFunction036");
        if (!gen) return FALSE;
    }
    while (len) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!gen(data, n)) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
