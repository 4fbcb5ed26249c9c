#pragma once

#include "plugins/AbiVersion.h"
#include "plugins/ConfigSchema.h"

#include <clayhook/plugin_abi.h>

#include <boost/dll/shared_library.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace clayhook {

// A plugin refused at load or creation. what() names the plugin, its path and
// the reason (and both ABI versions when they are the reason).
class PluginError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// A loaded plugin library and its validated descriptor. Instances keep a
// shared_ptr to it, so the library is unloaded only after the last instance
// created from it is destroyed (nothing of a plugin may outlive its code).
class PluginLibrary {
  public:
    // Loads `path` for the config entry `instance_name`: copies it to a
    // uniquely named file in `stage_dir` (so a rebuilt file at the same path
    // is really loaded again; dlopen would return the cached handle),
    // dlopens the copy with RTLD_NOW | RTLD_LOCAL, unlinks the copy (the
    // mapping stays), and validates the descriptor. Throws PluginError.
    static std::shared_ptr<PluginLibrary> load(const std::string& instance_name,
                                               const std::string& path,
                                               const std::string& stage_dir);

    const clayhook_plugin_descriptor& descriptor() const { return *descriptor_; }
    const std::string& path() const { return path_; }
    AbiVersion abi() const { return AbiVersion{descriptor_->abi_major, descriptor_->abi_minor}; }
    std::string name() const { return descriptor_->name; }
    std::string version() const { return descriptor_->version; }
    std::vector<std::string> event_patterns() const;
    // The config keys it declares (ABI 1.1; empty: none, the config is not checked).
    const std::vector<ConfigKeySpec>& config_keys() const { return config_keys_; }

    PluginLibrary(const PluginLibrary&) = delete;
    PluginLibrary& operator=(const PluginLibrary&) = delete;
    ~PluginLibrary();

  private:
    PluginLibrary() = default;
    std::string path_;
    boost::dll::shared_library library_;
    const clayhook_plugin_descriptor* descriptor_ = nullptr;
    std::vector<ConfigKeySpec> config_keys_;
};

// Makes a private (0700) staging folder under $TMPDIR for this process.
std::string make_stage_dir();

}  // namespace clayhook
