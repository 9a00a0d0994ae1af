/*
 * ferry.h - everything libferry offers, in one include.
 */
#ifndef FERRY_FERRY_H
#define FERRY_FERRY_H

#include "ferry/version.h"
#include "ferry/error.h"
#include "ferry/log.h"
#include "ferry/addr.h"
#include "ferry/transport.h"
#include "ferry/frame.h"
#include "ferry/loop.h"
#include "ferry/conn.h"
#include "ferry/server.h"
#include "ferry/tls.h"

#endif
