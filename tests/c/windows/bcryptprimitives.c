/* A stand-in for bcryptprimitives.dll, for running under Wine 8 only.
 *
 * Rust's std (1.78 and later) on Windows 10+ targets imports `ProcessPrng`
 * from bcryptprimitives.dll to seed HashMap keys; Windows 10 and 11 ship that
 * DLL, but Debian 12's Wine (8.0) does not (Wine 9 does), so evqueue.dll
 * fails to load there with "Library bcryptprimitives.dll ... not found".
 * tests/c/windows.sh builds this file into bcryptprimitives.dll next to the
 * test programs under Wine; it is never shipped. It forwards to RtlGenRandom
 * (advapi32's SystemFunction036), which Wine has. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
  while (len > 0) {
    ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
    if (!SystemFunction036(data, chunk)) return FALSE;
    data += chunk;
    len -= chunk;
  }
  return TRUE;
}
