#include "plugins/AbiVersion.h"

#include <clayhook/plugin_abi.h>

namespace clayhook {

AbiVersion host_abi() {
    return AbiVersion{CLAYHOOK_ABI_MAJOR, CLAYHOOK_ABI_MINOR};
}

std::string abi_incompatibility(AbiVersion host, AbiVersion plugin) {
    if (plugin.major != host.major)
        return "built for plugin ABI " + plugin.str() + " but this host speaks ABI " + host.str() +
               " (the major versions must be equal; rebuild the plugin against this host's SDK)";
    if (plugin.minor > host.minor)
        return "built for plugin ABI " + plugin.str() + " but this host speaks ABI " + host.str() +
               " (the plugin needs a newer host: its minor version is above the host's)";
    return "";
}

}  // namespace clayhook
