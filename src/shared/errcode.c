/*
 * errcode.c - names and messages for the programs' codes (errcode.h);
 * everything else is libferry's to describe.
 */
#include "errcode.h"

#include "ferry/error.h"

const char *app_strerror(int err)
{
    switch (err) {
#define MSG_(name, value, msg) case value: return msg;
    FERRY_APP_ERRNO_MAP(MSG_)
#undef MSG_
    }
    return ferry_strerror(err);
}

const char *app_err_name(int err)
{
    switch (err) {
#define NAME_(name, value, msg) case value: return "FERRY_E" #name;
    FERRY_APP_ERRNO_MAP(NAME_)
#undef NAME_
    }
    return ferry_err_name(err);
}
