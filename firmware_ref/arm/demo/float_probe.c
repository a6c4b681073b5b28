/*
 * Deliberately float-using image: on the Cortex-M3 (no FPU, -mfloat-abi=soft) this links libgcc's
 * soft-float helpers (__aeabi_fmul, __aeabi_fdiv, __aeabi_f2iz, ...). The tests build it to prove that
 * the "no __aeabi_f* / __aeabi_d* symbol" check on the int8 images really detects soft float.
 */
#include <stdint.h>

#include "semihost.h"

static volatile float num = 7.0f;
static volatile float den = 2.0f;
static volatile double dnum = 10.0;

int main(void)
{
    float q = num / den * 3.0f;           /* 10.5 */
    double d = dnum * 0.25;               /* 2.5 */
    sh_puts("float probe: ");
    sh_put_i32((int32_t)(q * 10.0f));     /* 105 */
    sh_puts(" ");
    sh_put_i32((int32_t)(d * 10.0));      /* 25 */
    sh_puts("\n");
    return 0;
}
