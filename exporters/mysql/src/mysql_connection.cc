#include "mysql_connection.h"

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "flowfold/exporters/host_port.h"

namespace flowfold::mysql {

namespace {

// LOAD DATA LOCAL served from memory: Connector/C asks these callbacks for
// the "file" named in the statement.
struct InfileSource {
  std::string_view data;
  size_t pos = 0;
};

int infileInit(void** ptr, const char*, void* userdata) {
  *ptr = userdata;
  return userdata ? 0 : 1;  // only our own LOAD DATA may read "files"
}
int infileRead(void* ptr, char* buf, unsigned int len) {
  auto* src = static_cast<InfileSource*>(ptr);
  const size_t n = std::min<size_t>(len, src->data.size() - src->pos);
  std::memcpy(buf, src->data.data() + src->pos, n);
  src->pos += n;
  return static_cast<int>(n);
}
void infileEnd(void*) {}
int infileError(void*, char* msg, unsigned int len) {
  std::strncpy(msg, "flowfold batch source failed", len);
  if (len) msg[len - 1] = '\0';
  return CR_UNKNOWN_ERROR;
}

}  // namespace

Connection::~Connection() { close(); }

void Connection::takeError() {
  errnum_ = m_ ? mysql_errno(m_) : CR_UNKNOWN_ERROR;
  error_ = m_ ? mysql_error(m_) : "no connection";
  if (errnum_ == 0) {
    errnum_ = CR_UNKNOWN_ERROR;
    if (error_.empty()) error_ = "unknown error";
  }
}

bool Connection::connect(const MysqlOptions& o, const std::string& password) {
  close();
  MYSQL* m = mysql_init(nullptr);
  if (!m) {
    errnum_ = CR_OUT_OF_MEMORY;
    error_ = "mysql_init failed (out of memory)";
    return false;
  }
  const unsigned connect_s = std::max(1u, o.connect_timeout_ms / 1000);
  const unsigned io_s = std::max(1u, o.io_timeout_ms / 1000);
  const unsigned local_infile = 1;
  const my_bool no = 0;
  mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &connect_s);
  mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &io_s);
  mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &io_s);
  mysql_options(m, MYSQL_OPT_LOCAL_INFILE, &local_infile);
  // Reconnecting behind our back would silently end a transaction; the sink
  // reconnects itself and asks the server where its spool stands.
  mysql_options(m, MYSQL_OPT_RECONNECT, &no);
  // No option files are read (no MYSQL_READ_DEFAULT_*): everything comes from flowfold's config.
  if (o.tls != MysqlOptions::Tls::kOff) {
    const my_bool yes = 1;
    mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &yes);
    if (o.tls == MysqlOptions::Tls::kVerify) mysql_options(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &yes);
    if (!o.tls_ca.empty()) mysql_options(m, MYSQL_OPT_SSL_CA, o.tls_ca.c_str());
    if (!o.tls_cert.empty()) mysql_options(m, MYSQL_OPT_SSL_CERT, o.tls_cert.c_str());
    if (!o.tls_key.empty()) mysql_options(m, MYSQL_OPT_SSL_KEY, o.tls_key.c_str());
  }
  const bool use_socket = !o.socket.empty();
  const char* host = use_socket ? "localhost" : o.host.c_str();
  if (!mysql_real_connect(m, host, o.user.c_str(), password.empty() ? nullptr : password.c_str(), o.database.c_str(),
                          use_socket ? 0 : o.port, use_socket ? o.socket.c_str() : nullptr, 0)) {
    errnum_ = mysql_errno(m);
    error_ = mysql_error(m);
    mysql_close(m);
    return false;
  }
  // Connector/C treats MYSQL_OPT_SSL_ENFORCE as "try TLS" and falls back to
  // plain text when the server has none; tls: required means required.
  if (o.tls != MysqlOptions::Tls::kOff && mysql_get_ssl_cipher(m) == nullptr) {
    errnum_ = CR_SSL_CONNECTION_ERROR;
    error_ = std::string("the server does not offer TLS, but tls is ") +
             (o.tls == MysqlOptions::Tls::kVerify ? "verify" : "required");
    mysql_close(m);
    return false;
  }
  m_ = m;
  mysql_set_local_infile_handler(m_, infileInit, infileRead, infileEnd, infileError, nullptr);
  std::lock_guard lock(fd_mu_);
  fd_ = static_cast<int>(mysql_get_socket(m_));
  errnum_ = 0;
  error_.clear();
  return true;
}

void Connection::close() {
  if (!m_) return;
  {
    // Forget the descriptor before it is closed, so interrupt() can never
    // shut down a socket number the process has reused.
    std::lock_guard lock(fd_mu_);
    fd_ = -1;
  }
  mysql_close(m_);
  m_ = nullptr;
}

void Connection::interrupt() {
  std::lock_guard lock(fd_mu_);
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

std::string Connection::serverInfo() const { return m_ ? mysql_get_server_info(m_) : ""; }

bool Connection::exec(std::string_view sql) {
  if (!m_) {
    errnum_ = CR_SERVER_GONE_ERROR;
    error_ = "not connected";
    return false;
  }
  if (mysql_real_query(m_, sql.data(), static_cast<unsigned long>(sql.size())) != 0) {
    takeError();
    return false;
  }
  // Statements may still return a result (SHOW, SELECT): drain it.
  if (MYSQL_RES* res = mysql_store_result(m_)) mysql_free_result(res);
  else if (mysql_field_count(m_) != 0) {
    takeError();
    return false;
  }
  affected_ = mysql_affected_rows(m_);
  insert_id_ = mysql_insert_id(m_);
  warnings_ = mysql_warning_count(m_);
  errnum_ = 0;
  error_.clear();
  return true;
}

bool Connection::query(std::string_view sql, std::vector<std::vector<std::optional<std::string>>>& rows) {
  rows.clear();
  if (!m_) {
    errnum_ = CR_SERVER_GONE_ERROR;
    error_ = "not connected";
    return false;
  }
  if (mysql_real_query(m_, sql.data(), static_cast<unsigned long>(sql.size())) != 0) {
    takeError();
    return false;
  }
  MYSQL_RES* res = mysql_store_result(m_);
  if (!res) {
    if (mysql_field_count(m_) == 0) return true;
    takeError();
    return false;
  }
  const unsigned cols = mysql_num_fields(res);
  while (MYSQL_ROW row = mysql_fetch_row(res)) {
    const unsigned long* lengths = mysql_fetch_lengths(res);
    std::vector<std::optional<std::string>> r(cols);
    for (unsigned i = 0; i < cols; ++i)
      if (row[i]) r[i] = std::string(row[i], lengths[i]);
    rows.push_back(std::move(r));
  }
  mysql_free_result(res);
  errnum_ = 0;
  error_.clear();
  return true;
}

bool Connection::loadDataLocal(std::string_view sql, std::string_view data) {
  if (!m_) {
    errnum_ = CR_SERVER_GONE_ERROR;
    error_ = "not connected";
    return false;
  }
  InfileSource src{data, 0};
  mysql_set_local_infile_handler(m_, infileInit, infileRead, infileEnd, infileError, &src);
  const bool ok = mysql_real_query(m_, sql.data(), static_cast<unsigned long>(sql.size())) == 0;
  mysql_set_local_infile_handler(m_, infileInit, infileRead, infileEnd, infileError, nullptr);
  if (!ok) {
    takeError();
    return false;
  }
  affected_ = mysql_affected_rows(m_);
  insert_id_ = mysql_insert_id(m_);
  warnings_ = mysql_warning_count(m_);
  errnum_ = 0;
  error_.clear();
  return true;
}

bool isLocalInfileRefused(unsigned errnum) {
  // 1148: local_infile=OFF (MariaDB < 10.5, MySQL 5.x); 4166: the same in
  // MariaDB 10.5+; 3948: MySQL 8's "Loading local data is disabled"; 2068:
  // a client refusing it (MySQL's libraries).
  return errnum == ER_NOT_ALLOWED_COMMAND || errnum == 4166 || errnum == 3948 || errnum == 2068;
}

std::string errorHint(unsigned errnum, const MysqlOptions& o) {
  switch (errnum) {
    case ER_ACCESS_DENIED_ERROR:
      return "check the user and the password (password, password_file or FLOWFOLD_MYSQL_PASSWORD)";
    case ER_DBACCESS_DENIED_ERROR:
      return "grant the user access: GRANT SELECT, INSERT, CREATE, CREATE VIEW, ALTER, DROP ON " + o.database +
             ".* TO '" + o.user + "'@'...'";
    case ER_BAD_DB_ERROR:
      return "create it first: CREATE DATABASE " + o.database;
    case ER_TABLEACCESS_DENIED_ERROR:
      return "the user lacks a privilege on " + o.database + " (INSERT, SELECT; CREATE and ALTER for create_table / "
             "partitions)";
    case ER_NO_SUCH_TABLE:
      return "create the tables (create_table: true, or the DDL of exporters/mysql/README.md)";
    case ER_BAD_FIELD_ERROR:
      return "the table exists with other columns; use another table name or migrate it to flowfold's schema";
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
      return o.socket.empty() ? "check that the server is running and listening on " +
                                    joinHostPort(o.host, std::to_string(o.port))
                              : "check that the server is running with the socket " + o.socket;
    case CR_UNKNOWN_HOST:
      return "the host name does not resolve";
    case CR_SSL_CONNECTION_ERROR:
      return "TLS failed: check tls, tls_ca and that the server has TLS enabled";
    default:
      return "";
  }
}

}  // namespace flowfold::mysql
