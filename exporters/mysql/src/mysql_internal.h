#pragma once
// Pieces of the MySQL sink shared between its source files.

#include <string>
#include <string_view>

#include "flowfold/exporters/mysql_exporter.h"

namespace flowfold {

/// The password to log in with: options.password, else the first line of
/// password_file (throws std::runtime_error when it cannot be read), else
/// $FLOWFOLD_MYSQL_PASSWORD, else empty.
/// The password: `password`, else the first line of `password_file`, else
/// the systemd credential kMysqlPasswordCredential, else
/// $FLOWFOLD_MYSQL_PASSWORD, else none.
std::string resolveMysqlPassword(const MysqlOptions& options);
inline constexpr const char* kMysqlPasswordCredential = "mysql-password";

/// The longest name suffix of the accounting tables (<table>_acct_host_daily).
inline constexpr std::string_view kLongestAccountingSuffix = "_acct_host_daily";

}  // namespace flowfold
