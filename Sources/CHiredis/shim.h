#ifndef BURSAR_CHIREDIS_SHIM_H
#define BURSAR_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif
