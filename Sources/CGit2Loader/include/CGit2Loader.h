#ifndef SLIPWAY_CGIT2_LOADER_H
#define SLIPWAY_CGIT2_LOADER_H

/// Whether libgit2 has been loaded in this process (it is, on the first call of a libgit2
/// function; see git2_loader.c).
int slipway_git2_is_loaded(void);

#endif
