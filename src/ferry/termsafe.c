/*
 * termsafe.c - text made safe for a terminal (termsafe.h).
 */
#include "termsafe.h"

#include <string.h>

/* The length of the control at s (n bytes left): 0 for none, 1 for C0
 * or DEL, 2 for C1 in UTF-8. */
static size_t control_at(const char *s, size_t n)
{
    unsigned char c = (unsigned char)s[0];

    if (c < 0x20 || c == 0x7f)
        return 1;
    if (c == 0xc2 && n > 1 && (unsigned char)s[1] >= 0x80 && (unsigned char)s[1] <= 0x9f)
        return 2;
    return 0;
}

void termsafe_defang(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t k = control_at(s + i, n - i);

        for (size_t j = 0; j < k; j++)
            s[i + j] = '?';
        if (k)
            i += k - 1;
    }
}

int termsafe_has_control(const char *s)
{
    size_t n = strlen(s);

    for (size_t i = 0; i < n; i++)
        if (control_at(s + i, n - i))
            return 1;
    return 0;
}
