#pragma once
// Pieces of the MySQL sink shared between its source files.

#include <string>

#include "flowfold/exporters/mysql_exporter.h"

namespace flowfold {

/// The password to log in with: options.password, else the first line of
/// password_file (throws std::runtime_error when it cannot be read), else
/// $FLOWFOLD_MYSQL_PASSWORD, else empty.
std::string resolveMysqlPassword(const MysqlOptions& options);

}  // namespace flowfold
