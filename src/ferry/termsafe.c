/*
 * termsafe.c - text made safe for a terminal (termsafe.h).
 */
#include "termsafe.h"

void termsafe_defang(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7f)
            s[i] = '?';
        else if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
                 (unsigned char)s[i + 1] <= 0x9f)
            s[i] = s[i + 1] = '?';
    }
}
