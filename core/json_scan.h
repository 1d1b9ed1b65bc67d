/* Validates JSON text without building it: accepts exactly what the core's
 * jansson parse accepts. */
#ifndef WSN_JSON_SCAN_H
#define WSN_JSON_SCAN_H

#include <stddef.h>

/* 1 if text[0..len) is one JSON value with optional surrounding whitespace. */
int json_scan_valid(const char *text, size_t len);

#endif
