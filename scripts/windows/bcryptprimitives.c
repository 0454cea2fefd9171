/* wine 8 has no bcryptprimitives.dll, whose ProcessPrng Rust's std (>= 1.78) imports for random
 * numbers; without it every Rust .exe exits with code 53 before main. This stand-in answers
 * ProcessPrng from advapi32's RtlGenRandom (SystemFunction036), which wine has. Test-only:
 * it is installed into the throwaway wine prefix of scripts/windows-check.sh, never shipped. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG n = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        length -= n;
    }
    return TRUE;
}
