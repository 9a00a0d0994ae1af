/*
 * unit_util.h - kept as a forwarding header: the shared helpers live in
 * the fixture library (tests/unit/fixture/), and tests that include this
 * name get them from there.
 */
#ifndef FERRY_UNIT_UTIL_H
#define FERRY_UNIT_UTIL_H

#include "fix_util.h"

#endif
