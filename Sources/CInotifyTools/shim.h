#ifndef SLIPWAY_CINOTIFYTOOLS_SHIM_H
#define SLIPWAY_CINOTIFYTOOLS_SHIM_H
#include <inotifytools/inotifytools.h>
#include <inotifytools/inotify.h>
#endif
