#include "crash/CrashRecord.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace clayhook {

std::string CrashRecord::reason() const {
    return "the host died of " + signal + " during this call" +
           (plugin.empty() ? std::string() : " (plugin '" + plugin + "', running in-process)");
}

std::optional<CrashRecord> read_crash_record(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        if (errno == ENOENT) return std::nullopt;
        throw std::runtime_error("cannot read the crash record " + path + ": " +
                                 std::strerror(errno));
    }
    auto bad = [&](const std::string& why) {
        return std::runtime_error("crash record " + path + ": " + why);
    };
    std::string line;
    if (!std::getline(in, line) || line != "clayhook-crash 1") throw bad("not a crash record");
    CrashRecord r;
    bool seen_signal = false;
    while (std::getline(in, line)) {
        const auto sp = line.find(' ');
        const std::string key = line.substr(0, sp);
        const std::string value = sp == std::string::npos ? "" : line.substr(sp + 1);
        if (key == "signal") {
            r.signal = value;
            seen_signal = true;
        } else if (key == "owner") {
            r.owner = value;
        } else if (key == "plugin") {
            r.plugin = value;
        } else if (key == "deliveries") {
            std::istringstream ids(value);
            int64_t id;
            while (ids >> id)
                if (id > 0) r.deliveries.push_back(id);
            if (!ids.eof()) throw bad("a delivery id is not a number");
        } else if (!key.empty()) {
            throw bad("unknown line '" + key + "'");
        }
    }
    if (!seen_signal || r.signal.rfind("SIG", 0) != 0) throw bad("no signal");
    if (r.signal.size() > 16 || r.plugin.size() > 200 || r.owner.size() > 255)
        throw bad("a field is too long");
    return r;
}

}  // namespace clayhook
