#include "wsnotify.h"

#define WSN_STR2(x) #x
#define WSN_STR(x) WSN_STR2(x)

WSN_API int wsn_version(void) { return WSN_VERSION_NUMBER; }

WSN_API const char *wsn_version_string(void)
{
    return WSN_STR(WSN_VERSION_MAJOR) "." WSN_STR(WSN_VERSION_MINOR) "." WSN_STR(WSN_VERSION_PATCH);
}
