#include "plugins/PluginLibrary.h"

#include "plugins/ConfigSchema.h"

#include "routing/EventPattern.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cstddef>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace fs = std::filesystem;

namespace clayhook {

namespace {

std::atomic<uint64_t> g_stage_counter{0};

[[noreturn]] void refuse(const std::string& instance, const std::string& path,
                         const std::string& reason) {
    throw PluginError("plugin '" + instance + "' (" + path + ") refused: " + reason);
}

// Copies src to dst with O_EXCL (dst must not exist: a planted file or
// symlink in the staging folder is never followed).
void copy_exclusive(const std::string& src, const std::string& dst) {
    int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) throw std::runtime_error(std::string("cannot open: ") + std::strerror(errno));
    int out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0500);
    if (out < 0) {
        int e = errno;
        ::close(in);
        throw std::runtime_error("cannot stage a copy in " + dst + ": " + std::strerror(e));
    }
    char buf[1 << 16];
    for (;;) {
        ssize_t n = ::read(in, buf, sizeof buf);
        if (n == 0) break;
        if (n < 0 || ::write(out, buf, static_cast<size_t>(n)) != n) {
            int e = errno;
            ::close(in);
            ::close(out);
            ::unlink(dst.c_str());
            throw std::runtime_error(std::string("cannot stage a copy: ") + std::strerror(e));
        }
    }
    ::close(in);
    ::close(out);
}

bool valid_plugin_name(const char* s) {
    if (s == nullptr || *s == '\0') return false;
    if (!(std::islower(static_cast<unsigned char>(*s)) ||
          std::isdigit(static_cast<unsigned char>(*s))))
        return false;
    size_t n = 0;
    for (const char* p = s; *p; ++p, ++n) {
        char c = *p;
        if (!(std::islower(static_cast<unsigned char>(c)) ||
              std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
            return false;
        if (n > 64) return false;
    }
    return true;
}

}  // namespace

std::string make_stage_dir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/clayhook-stage-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr)
        throw std::runtime_error("cannot create a plugin staging folder under " +
                                 std::string(tmp && *tmp ? tmp : "/tmp") + ": " +
                                 std::strerror(errno));
    return templ;
}

std::shared_ptr<PluginLibrary> PluginLibrary::load(const std::string& instance,
                                                   const std::string& path,
                                                   const std::string& stage_dir) {
    std::error_code ec;
    if (!fs::exists(path, ec)) refuse(instance, path, "the file does not exist");
    if (!fs::is_regular_file(path, ec)) refuse(instance, path, "not a regular file");

    std::string staged = stage_dir + "/" + std::to_string(::getpid()) + "-" +
                         std::to_string(g_stage_counter.fetch_add(1)) + "-" +
                         fs::path(path).filename().string();
    try {
        copy_exclusive(path, staged);
    } catch (const std::exception& e) {
        refuse(instance, path, e.what());
    }

    std::shared_ptr<PluginLibrary> lib(new PluginLibrary());
    lib->path_ = path;
    boost::dll::fs::error_code load_ec;
    lib->library_.load(staged, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local,
                       load_ec);
    // The mapping survives the unlink; nothing is left behind in the staging folder.
    ::unlink(staged.c_str());
    if (load_ec) {
        const char* dl = ::dlerror();  // Boost's message is generic; dlerror says which symbol
        std::string why = dl ? dl : load_ec.message();
        // dlerror names the staged copy; name the file the operator knows.
        if (auto p = why.find(staged); p != std::string::npos) why.replace(p, staged.size(), path);
        refuse(instance, path, "cannot be loaded: " + why);
    }
    if (!lib->library_.has(CLAYHOOK_PLUGIN_ENTRY_SYMBOL))
        refuse(instance, path,
               std::string("it does not export ") + CLAYHOOK_PLUGIN_ENTRY_SYMBOL +
                   "(): not a clayhook plugin (was CLAYHOOK_PLUGIN(...) left out?)");
    auto entry =
        lib->library_.get<const clayhook_plugin_descriptor*()>(CLAYHOOK_PLUGIN_ENTRY_SYMBOL);
    const clayhook_plugin_descriptor* d = entry();
    if (d == nullptr) refuse(instance, path, "its entry point returned no descriptor");

    AbiVersion plugin_abi{d->abi_major, d->abi_minor};
    if (auto why = abi_incompatibility(host_abi(), plugin_abi); !why.empty())
        refuse(instance, path, why);
    // The host reads the 1.0 fields of every plugin; fields a later minor adds
    // will be read only when the plugin's struct_size covers them, so a
    // plugin built for an older minor keeps loading on a newer host.
    constexpr size_t kDescriptorSize_1_0 =
        offsetof(clayhook_plugin_descriptor, handle_batch) + sizeof(d->handle_batch);
    if (d->struct_size < kDescriptorSize_1_0)
        refuse(instance, path,
               "its descriptor is " + std::to_string(d->struct_size) + " bytes, ABI " +
                   plugin_abi.str() + " needs " + std::to_string(kDescriptorSize_1_0));
    if (!valid_plugin_name(d->name))
        refuse(instance, path, "its name is missing or not of [a-z0-9][a-z0-9_.-]*");
    if (d->version == nullptr || *d->version == '\0')
        refuse(instance, path, "plugin '" + std::string(d->name) + "' declares no version");
    if (d->event_patterns == nullptr || d->event_pattern_count == 0)
        refuse(instance, path, "plugin '" + std::string(d->name) + "' declares no event patterns");
    for (size_t i = 0; i < d->event_pattern_count; ++i) {
        const char* p = d->event_patterns[i];
        std::string why = p == nullptr ? "a null event pattern" : EventPattern::why_invalid(p);
        if (!why.empty()) refuse(instance, path, "event pattern: " + why);
    }
    if (d->create == nullptr || d->destroy == nullptr ||
        (d->handle == nullptr && (d->max_batch_size == 0 || d->handle_batch == nullptr)))
        refuse(instance, path,
               "its descriptor lacks create, destroy, or handle (needed unless handle_batch "
               "with max_batch_size is given)");
    if (d->max_batch_size > 0 && d->handle_batch == nullptr)
        refuse(instance, path,
               "it declares max_batch_size " + std::to_string(d->max_batch_size) +
                   " but no handle_batch");
    // 1.1: the declared config, when the descriptor is long enough to hold it.
    constexpr size_t kDescriptorSize_1_1 =
        offsetof(clayhook_plugin_descriptor, config_key_count) + sizeof(d->config_key_count);
    if (plugin_abi.minor >= 1 && d->struct_size >= kDescriptorSize_1_1) {
        try {
            lib->config_keys_ = read_config_keys(d->config_keys, d->config_key_count);
        } catch (const std::invalid_argument& e) {
            refuse(instance, path, std::string("its config declaration: ") + e.what());
        }
    }
    lib->descriptor_ = d;
    return lib;
}

std::vector<std::string> PluginLibrary::event_patterns() const {
    std::vector<std::string> out;
    for (size_t i = 0; i < descriptor_->event_pattern_count; ++i)
        out.emplace_back(descriptor_->event_patterns[i]);
    return out;
}

PluginLibrary::~PluginLibrary() {
    descriptor_ = nullptr;
    library_.unload();
}

}  // namespace clayhook
