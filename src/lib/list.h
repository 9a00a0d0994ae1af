/*
 * list.h - the one intrusive doubly linked list in libferry: a node inside
 * each element, a circular list with a head that is its own sentinel, so
 * linking and unlinking never branch on "first" or "last" (the Linux
 * kernel's and libuv's QUEUE's shape).  Used for the connections on a
 * loop, the loop's timers, and the THREAD and FORK models' workers.
 */
#ifndef FERRY_LIST_H
#define FERRY_LIST_H

#include <stddef.h>

struct list_node {
    struct list_node *prev, *next;
};

/* The element of type `type` whose member `member` is the node n. */
#define list_entry(n, type, member) ((type *)(void *)((char *)(n) - offsetof(type, member)))

/* Walk the list at head; the body must not unlink the current node. */
#define list_for_each(n, head) for ((n) = (head)->next; (n) != (head); (n) = (n)->next)

/* Walk the list at head; the current node may be unlinked (and freed)
 * inside the body. */
#define list_for_each_safe(n, tmp, head) \
    for ((n) = (head)->next, (tmp) = (n)->next; (n) != (head); (n) = (tmp), (tmp) = (n)->next)

static inline void list_init(struct list_node *head)
{
    head->prev = head->next = head;
}

static inline int list_empty(const struct list_node *head)
{
    return head->next == head;
}

/* Link n first in the list at head. */
static inline void list_push(struct list_node *head, struct list_node *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}

/* Take n out of its list; it then forms a list of its own (unlinking it
 * again is harmless). */
static inline void list_unlink(struct list_node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    list_init(n);
}

#endif
