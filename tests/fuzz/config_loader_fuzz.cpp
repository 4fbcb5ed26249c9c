// Fuzz target: load_config (host/config/ConfigLoader.cpp, SecretResolver.cpp) on arbitrary YAML.
//
// The input is written to a file and loaded, with the working directory a private scratch folder
// (relative secret files, plugin libraries and the store resolve in it). ConfigError is how a bad
// config is refused, so it is expected; any other exception is a finding, since load_config
// promises ConfigError and `clayhook check` catches nothing else. Crashes, sanitizer reports,
// hangs and memory blow-ups are findings too.
//
// Nothing outside the scratch folder is read: inputs with a `file:` secret reference that is
// absolute or goes up (`..`) are skipped, so that no input reads /dev/zero or blocks on a FIFO.
// The scratch folder holds a few secret files to find: var/admin-token and
// var/clay-webhook-secret (the default config's), secret, secret-crlf, secret-loose (mode 0644),
// secret-empty and secret-big (over the 64 KiB limit). Only CLAYHOOK_FUZZ_SECRET is set among the
// variables the seeds use. No plugin is loaded: load_config only resolves library paths, and
// `bundled:` ones are looked up in a folder that does not exist.
#include "config/ConfigError.h"
#include "config/ConfigLoader.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/parser.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

using namespace clayhook;
namespace fs = std::filesystem;

namespace {

[[noreturn]] void setup_failed(const std::string& what) {
    std::fprintf(stderr, "config_loader fuzz: %s\n", what.c_str());
    std::abort();
}

void write_file(const fs::path& path, const std::string& content, fs::perms mode) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
    out.close();
    if (!out) setup_failed("cannot write " + path.string());
    fs::permissions(path, mode);
}

struct Scratch {
    std::string dir;
    std::string input;  // dir/input.yaml, the config under test
    LoadOptions options;
    int home = -1;  // the working directory to go back to after each input
};

std::string g_scratch_dir;  // for the atexit clean-up

const Scratch& scratch() {
    static const Scratch s = [] {
        Scratch made;
        const char* tmp = std::getenv("TMPDIR");
        std::string templ =
            std::string(tmp && *tmp ? tmp : "/tmp") + "/clayhook-fuzz-config.XXXXXX";
        if (::mkdtemp(templ.data()) == nullptr) setup_failed("mkdtemp failed in " + templ);
        made.dir = templ;
        made.input = made.dir + "/input.yaml";
        made.options.bundled_plugin_dirs = {made.dir + "/no-plugins-here"};
        made.home = ::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (made.home < 0) setup_failed("cannot open the working directory");

        const fs::path d(made.dir);
        const auto owner = fs::perms::owner_read | fs::perms::owner_write;
        const auto loose = owner | fs::perms::group_read | fs::perms::others_read;
        fs::create_directory(d / "var");
        write_file(d / "var" / "admin-token", "fuzz-admin-token\n", owner);
        write_file(d / "var" / "clay-webhook-secret", "fuzz-webhook-secret\n", owner);
        write_file(d / "secret", "fuzz-file-secret\n", owner);
        write_file(d / "secret-crlf", "fuzz-file-secret\r\n", owner);
        write_file(d / "secret-loose", "fuzz-file-secret", loose);
        write_file(d / "secret-empty", "", owner);
        write_file(d / "secret-big", std::string(64 * 1024 + 1, 'x'), owner);

        // The same outcome wherever it runs: only the fuzz variable is set.
        ::setenv("CLAYHOOK_FUZZ_SECRET", "fuzz-env-secret", 1);
        for (const char* v : {"CLAYHOOK_FUZZ_UNSET", "CLAY_WEBHOOK_SECRET", "CLAYHOOK_ADMIN_TOKEN",
                              "CLAYHOOK_PLUGIN_DIR"})
            ::unsetenv(v);

        g_scratch_dir = made.dir;
        std::atexit([] {
            std::error_code ec;
            fs::remove_all(g_scratch_dir, ec);
        });
        return made;
    }();
    return s;
}

// Every scalar of the document, aliases not expanded (so this stays linear even where the
// loader may not): false when one holds `file:` followed by an absolute path or a `..`. The
// parser is the one load_config uses, so the loader sees no scalar this did not; where parsing
// fails, the loader fails at the same place.
class FileRefScan : public YAML::EventHandler {
  public:
    bool safe = true;

    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  const std::string& value) override {
        for (size_t at = value.find("file:"); at != std::string::npos;
             at = value.find("file:", at + 1)) {
            const std::string path = value.substr(at + 5);
            if (path.empty()) continue;
            if (path[0] == '/' || path.find("..") != std::string::npos) safe = false;
        }
    }
    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
};

bool reads_only_scratch_files(const std::string& text) {
    std::istringstream in(text);
    FileRefScan scan;
    try {
        // The first document only, as YAML::Load reads. (Asking for more can loop for ever:
        // yaml-cpp 0.7 keeps finding empty documents after "%YAML 1.2\n, }\n".)
        YAML::Parser parser(in);
        parser.HandleNextDocument(scan);
    } catch (const YAML::Exception&) {
        // load_config refuses it at the same place, having seen only what the scan saw.
    }
    return scan.safe;
}

// Back to where the fuzzer was started, also when load_config throws.
struct InScratch {
    explicit InScratch(const Scratch& s) : home(s.home) {
        if (::chdir(s.dir.c_str()) != 0) setup_failed("cannot enter " + s.dir);
    }
    ~InScratch() {
        if (::fchdir(home) != 0) setup_failed("cannot go back to the working directory");
    }
    InScratch(const InScratch&) = delete;
    InScratch& operator=(const InScratch&) = delete;
    int home;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const Scratch& s = scratch();
    const std::string text(reinterpret_cast<const char*>(data), size);
    if (!reads_only_scratch_files(text)) return 0;
    {
        // A new file each time: ext4 flushes a truncated and rewritten file to disk on close,
        // which made this four times slower.
        ::unlink(s.input.c_str());
        std::ofstream out(s.input, std::ios::binary | std::ios::trunc);
        out << text;
        out.close();
        if (!out) setup_failed("cannot write " + s.input);
    }

    InScratch here(s);
    try {
        const Config config = load_config(s.input, s.options);
        require_secrets(config);  // what `serve` adds: unresolved secrets become errors
    } catch (const ConfigError&) {
        // a refused config: expected
    }
    return 0;
}
