#pragma once

// A host config file for the commands that only read the store (`clayhook
// backup`): the SQLite store at `db` with the journal on, and one token
// source whose secret is in a file (nothing is posted with it).

#include "support/TempDir.h"

#include <string>

namespace clayhook::test {

inline std::string journal_store_config(TempDir& dir, const std::string& db) {
    dir.write("secret", "not-used-here");
    return dir.write("clayhook.yaml", "admin: {enabled: false}\nstore: {path: " + db +
                                          ", journal: true}\n"
                                          "sources:\n"
                                          "  - name: clay\n"
                                          "    path: /webhooks/clay\n"
                                          "    verify: {scheme: token, "
                                          "secrets: [\"file:secret\"]}\n");
}

}  // namespace clayhook::test
