#pragma once
// A thin RAII wrapper over one MariaDB Connector/C connection: connect with
// the sink's options, run statements, stream LOAD DATA LOCAL from memory,
// and let another thread cut a blocked call short.

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "flowfold/exporters/mysql_exporter.h"

struct st_mysql;

namespace flowfold::mysql {

class Connection {
 public:
  Connection() = default;
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// False on failure; errnum()/error() say why.
  bool connect(const MysqlOptions& o, const std::string& password);
  void close();
  bool connected() const { return m_ != nullptr; }

  /// Runs a statement whose result (if any) is discarded.
  bool exec(std::string_view sql);
  /// Runs a query; rows as strings (NULL as nullopt).
  bool query(std::string_view sql, std::vector<std::vector<std::optional<std::string>>>& rows);
  /// Runs LOAD DATA LOCAL INFILE `sql`, the client serving `data` as the file.
  bool loadDataLocal(std::string_view sql, std::string_view data);

  uint64_t affectedRows() const { return affected_; }
  /// The first AUTO_INCREMENT id the last statement generated (0: none).
  uint64_t insertId() const { return insert_id_; }
  unsigned warnings() const { return warnings_; }
  unsigned errnum() const { return errnum_; }
  const std::string& error() const { return error_; }
  /// Server version string of the open connection ("10.11.19-MariaDB-...").
  std::string serverInfo() const;

  /// From any thread: makes a call blocked on the socket fail now.
  void interrupt();

 private:
  void takeError();

  st_mysql* m_ = nullptr;
  std::mutex fd_mu_;
  int fd_ = -1;
  uint64_t affected_ = 0;
  uint64_t insert_id_ = 0;
  unsigned warnings_ = 0;
  unsigned errnum_ = 0;
  std::string error_;
};

/// True for errors that mean the server cannot take LOAD DATA LOCAL (and
/// INSERT should be used instead).
bool isLocalInfileRefused(unsigned errnum);

/// A hint for the operator for common connection/statement errors ("" if none).
std::string errorHint(unsigned errnum, const MysqlOptions& o);

}  // namespace flowfold::mysql
