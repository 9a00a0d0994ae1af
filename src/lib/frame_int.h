/*
 * frame_int.h - what the connection engine may do to a push parser beyond
 * frame.h: account for body bytes that went around it (spliced from the
 * socket into a file, ferry_conn_recv_body_to_file), so the parser stays
 * in step with the stream without seeing those bytes.
 */
#ifndef FERRY_FRAME_INT_H
#define FERRY_FRAME_INT_H

#include <stdint.h>

#include "ferry/frame.h"

/* Body bytes of the current frame not yet fed or taken; 0 outside a body. */
uint64_t ferry__frame_parser_body_left(const struct ferry_frame_parser *p);

/* The parser owes an END that needs no input (the frame's last byte was
 * fed, its END not yet reported): a feed of no bytes reports it. */
int ferry__frame_parser_owes_end(const struct ferry_frame_parser *p);

/* n (<= body_left) body bytes were consumed elsewhere.  When that ends the
 * body, the next feed (even of no bytes) reports FERRY_FRAME_END. */
void ferry__frame_parser_body_taken(struct ferry_frame_parser *p, uint64_t n);

#endif
