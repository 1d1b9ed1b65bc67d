/* The core's one intrusive list: a node embedded in the element, a list
 * of head and tail, O(1) append and removal, no allocation. The links are
 * checked at every removal in debug builds (a node must be where its
 * neighbours say). A node holds no owner pointer: some elements are kept
 * by the ten thousand (wsn_client), and two pointers per list is the cost. */
#ifndef WSN_UTIL_LIST_H
#define WSN_UTIL_LIST_H

#include <assert.h>
#include <stddef.h>

#define wsni_container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

typedef struct wsni_list_node {
    struct wsni_list_node *prev, *next;
} wsni_list_node;

typedef struct wsni_list {
    wsni_list_node *head, *tail;
} wsni_list;

/* The element holding the first node, or NULL. */
#define wsni_list_first(list, type, member) \
    ((list)->head ? wsni_container_of((list)->head, type, member) : NULL)

static inline void wsni_list_append(wsni_list *l, wsni_list_node *n)
{
    assert(!n->prev && !n->next && l->head != n && "node already in a list");
    n->prev = l->tail;
    n->next = NULL;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
}

/* Puts n after at, or first when at is NULL. */
static inline void wsni_list_insert_after(wsni_list *l, wsni_list_node *at, wsni_list_node *n)
{
    assert(!n->prev && !n->next && l->head != n && "node already in a list");
    n->prev = at;
    n->next = at ? at->next : l->head;
    if (n->next)
        n->next->prev = n;
    else
        l->tail = n;
    if (at)
        at->next = n;
    else
        l->head = n;
}

static inline void wsni_list_remove(wsni_list *l, wsni_list_node *n)
{
    assert((n->prev ? n->prev->next == n : l->head == n) && "node not in this list");
    assert((n->next ? n->next->prev == n : l->tail == n) && "node not in this list");
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

#endif
