// MessageEncoder on libfixbuf 2.4. libfixbuf owns the templates, the
// transcoding, the message framing and the sequence numbers; it hands each
// finished message to a buffer exporter (fbExporterAllocBuffer), from where
// the exporter sends it. Its own network exporters are not used: the UDP one
// has a fixed 1420-byte message size and swallows send errors.

#include <fixbuf/public.h>
// fbSessionGetSequence/fbSessionSetSequence: options messages are written
// by hand (ipfix_options_records.h) in libfixbuf's sequence. The header has
// no extern "C" of its own.
extern "C" {
#include <fixbuf/private.h>
}

#include <ctime>

#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "flowfold/log.h"
#include "ipfix_encoder.h"

namespace flowfold::ipfix {

namespace {


[[noreturn]] void throwFixbuf(const char* what, GError* err) {
  std::string message = std::string("IPFIX: libfixbuf ") + what + " failed: " +
                        (err && err->message ? err->message : "unknown error");
  g_clear_error(&err);
  throw std::runtime_error(message);
}

bool isEndOfMessage(const GError* err) {
  return g_error_matches(err, FB_ERROR_DOMAIN, FB_ERROR_EOM);
}

// Builds a template from its field groups and checks that libfixbuf's
// information model agrees with our tables (element ids, enterprise numbers
// and lengths): libfixbuf knows each reverse element of RFC 5103 by name.
fbTemplate_t* buildTemplate(fbInfoModel_t* model, const TemplateLayout& t) {
  std::vector<const FieldSpec*> fields;
  for (const FieldSpec& f : t.ip) fields.push_back(&f);
  for (const FieldSpec& f : kFlowFields) fields.push_back(&f);
  for (const FieldSpec& f : t.tail) fields.push_back(&f);
  std::vector<fbInfoElementSpec_t> specs;
  for (const FieldSpec* f : fields) {
    specs.push_back(fbInfoElementSpec_t{const_cast<char*>(f->name), f->length, 0});
  }
  specs.push_back(fbInfoElementSpec_t FB_IESPEC_NULL);

  fbTemplate_t* tmpl = fbTemplateAlloc(model);
  GError* err = nullptr;
  if (!fbTemplateAppendSpecArray(tmpl, specs.data(), 0, &err)) {
    fbTemplateFreeUnused(tmpl);
    throwFixbuf("fbTemplateAppendSpecArray", err);
  }
  bool ok = fbTemplateCountElements(tmpl) == fields.size();
  for (size_t i = 0; ok && i < fields.size(); ++i) {
    const fbInfoElement_t* ie = fbTemplateGetIndexedIE(tmpl, static_cast<uint32_t>(i));
    ok = ie && ie->ent == fields[i]->enterprise && ie->num == fields[i]->id && ie->len == fields[i]->length;
  }
  if (!ok) {
    fbTemplateFreeUnused(tmpl);
    throw std::logic_error(
        "IPFIX: libfixbuf's information model disagrees with the template table");
  }
  return tmpl;
}

// libfixbuf 2.4's model has flowId (148) but not its reverse: it marks
// flowId not reversible (an identifier, RFC 5103 section 6.1). The biflow
// templates carry the responder's flow id as 148 with the reverse PEN all
// the same (so the packet recorder can find both flows of a conversation):
// the element is added to this model by hand, as an unsigned64 identifier.
void addReverseFlowId(fbInfoModel_t* model) {
  fbInfoElement_t ie = FB_IE_INIT_FULL("reverseFlowId", kReversePen, 148, 8, FB_IE_IDENTIFIER | FB_IE_F_ENDIAN, 0, 0,
                                       FB_UINT_64, nullptr);
  fbInfoModelAddElement(model, &ie);
}

struct InfoModelDeleter {
  void operator()(fbInfoModel_t* m) const { fbInfoModelFree(m); }
};
struct SessionDeleter {
  void operator()(fbSession_t* s) const { fbSessionFree(s); }
};
struct BufferDeleter {
  void operator()(fBuf_t* b) const { fBufFree(b); }  // frees its session and exporter too
};

class FixbufEncoder final : public PackedRecordEncoder<FixbufEncoder> {
  friend class PackedRecordEncoder<FixbufEncoder>;  // calls appendRecord()

 public:
  FixbufEncoder(uint32_t observation_domain, size_t max_message, bool with_direction, bool biflow, bool sampling)
      : max_message_(max_message), templates_(templateLayouts(with_direction, biflow)), domain_(observation_domain),
        sampling_(sampling),
        out_(max_message), options_out_(max_message), model_(fbInfoModelAlloc()) {
    if (max_message < templateMessageSize(with_direction, biflow, sampling))
      throw std::invalid_argument("IPFIX: a message of " + std::to_string(max_message) + " bytes cannot hold the templates");
    addReverseFlowId(model_.get());
    std::unique_ptr<fbSession_t, SessionDeleter> session(fbSessionAlloc(model_.get()));
    // The domain scopes external templates and sequence numbers: set it first.
    fbSessionSetDomain(session.get(), observation_domain);
    for (const TemplateLayout& t : templates_) addTemplatePair(session.get(), t);

    exporter_ = fbExporterAllocBuffer(out_.data(), static_cast<uint16_t>(max_message));
    fbuf_.reset(fBufAllocForExport(session.release(), exporter_));
    // Manual mode: the caller decides where messages end.
    fBufSetAutomaticMode(fbuf_.get(), FALSE);
  }

  void setExportTime(uint32_t seconds) override {
    fBufSetExportTime(fbuf_.get(), seconds);
    export_time_ = seconds;
  }


  size_t pendingRecords() const override { return msg_records_; }

  std::span<const uint8_t> finish() override {
    if (msg_bytes_ == 0) return {};  // libfixbuf has no open message either
    const size_t predicted = msg_bytes_;
    msg_bytes_ = 0;
    msg_records_ = 0;
    open_set_ = 0;
    GError* err = nullptr;
    if (!fBufEmit(fbuf_.get(), &err)) throwFixbuf("fBufEmit", err);
    const size_t size = fbExporterGetMsgLen(exporter_);
    if (size != predicted && !size_warning_logged_) {
      size_warning_logged_ = true;
      logWarn("IPFIX: libfixbuf wrote a %zu-byte message where %zu were expected; messages "
              "still respect the size limit",
              size, predicted);
    }
    return {out_.data(), size};
  }

  std::span<const uint8_t> encodeTemplates() override {
    if (msg_bytes_ != 0) throw std::logic_error("IPFIX: encodeTemplates() with an open message");
    fbSession_t* session = fBufGetSession(fbuf_.get());
    for (const TemplateLayout& t : templates_) {
      const uint16_t tid = t.id;
      GError* err = nullptr;
      if (fbSessionExportTemplate(session, tid, &err)) continue;
      // In manual mode the first template after data "ends the message"
      // (libfixbuf always puts templates in a message of their own): retry.
      if (!isEndOfMessage(err)) throwFixbuf("fbSessionExportTemplate", err);
      g_clear_error(&err);
      if (!fbSessionExportTemplate(session, tid, &err)) throwFixbuf("fbSessionExportTemplate", err);
    }
    msg_bytes_ = kMessageHeaderSize + kSetHeaderSize + templates_size_;
    open_set_ = kTemplateSetId;
    const std::span<const uint8_t> data_templates = finish();
    // The options templates follow in the same message, each in a set of
    // its own, which libfixbuf does not write: appended, the length mended.
    size_t size = data_templates.size();
    size += writeOptionsTemplateSets(out_.data() + size, sampling_);
    out_[2] = static_cast<uint8_t>(size >> 8);
    out_[3] = static_cast<uint8_t>(size);
    return {out_.data(), size};
  }

  std::span<const uint8_t> encodeOptions(const OptionsValues& values) override {
    if (msg_bytes_ != 0) throw std::logic_error("IPFIX: encodeOptions() with an open message");
    fbSession_t* session = fBufGetSession(fbuf_.get());
    const uint32_t sequence = fbSessionGetSequence(session);
    const size_t size = writeOptionsMessage(options_out_.data(), values, exportTime(), sequence);
    fbSessionSetSequence(session, sequence + static_cast<uint32_t>(optionsRecordCount(values.sampling)));
    return {options_out_.data(), size};
  }

  std::span<const uint8_t> encodeWithdrawals() override {
    if (msg_bytes_ != 0) throw std::logic_error("IPFIX: encodeWithdrawals() with an open message");
    std::vector<uint16_t> ids;
    for (const TemplateLayout& t : templates_) ids.push_back(t.id);
    const uint32_t sequence = fbSessionGetSequence(fBufGetSession(fbuf_.get()));
    const size_t size = writeWithdrawalMessage(options_out_.data(), ids, sampling_, domain_, exportTime(), sequence);
    return {options_out_.data(), size};
  }

 private:
  // The header's export time, as libfixbuf writes it: the pipeline time
  // set, or the wall clock before there is one.
  uint32_t exportTime() const {
    return export_time_ != 0 ? export_time_ : static_cast<uint32_t>(std::time(nullptr));
  }

  void addTemplatePair(fbSession_t* session, const TemplateLayout& t) {
    // Internal and external templates are identical (explicit lengths, as
    // libfixbuf requires for internal ones); each needs its own object.
    for (const gboolean internal : {gboolean{TRUE}, gboolean{FALSE}}) {
      fbTemplate_t* tmpl = buildTemplate(model_.get(), t);
      GError* err = nullptr;
      if (fbSessionAddTemplate(session, internal, t.id, tmpl, &err) == 0) {
        fbTemplateFreeUnused(tmpl);
        throwFixbuf("fbSessionAddTemplate", err);
      }
    }
    templates_size_ += templateRecordSize(t);
  }

  template <class Record>
  bool appendRecord(uint16_t tid, const Record& record) {
    // Mirror libfixbuf's message size, so a full message is reported before
    // libfixbuf has to fail the append: its end-of-message error formats a
    // string, which would cost more than the record itself.
    const size_t need = sizeof(Record) + (open_set_ == tid ? 0 : kSetHeaderSize);
    if (msg_bytes_ != 0 && msg_bytes_ + need > max_message_) return false;
    if (current_tid_ != tid) {
      GError* err = nullptr;
      if (!fBufSetInternalTemplate(fbuf_.get(), tid, &err)) {
        throwFixbuf("fBufSetInternalTemplate", err);
      }
      if (!fBufSetExportTemplate(fbuf_.get(), tid, &err)) throwFixbuf("fBufSetExportTemplate", err);
      current_tid_ = tid;
    }

    // fBufAppend takes a non-const pointer but only reads the record.
    auto* base = const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(&record));
    GError* err = nullptr;
    if (!fBufAppend(fbuf_.get(), base, sizeof(Record), &err)) {
      if (!isEndOfMessage(err)) throwFixbuf("fBufAppend", err);
      g_clear_error(&err);
      // With a message open, it really is full (the mirror erred): let the
      // caller finish it. Without one, this is libfixbuf closing a template
      // message: the retry starts the data message.
      if (msg_bytes_ != 0) return false;
      if (!fBufAppend(fbuf_.get(), base, sizeof(Record), &err)) throwFixbuf("fBufAppend", err);
    }
    if (msg_bytes_ == 0) msg_bytes_ = kMessageHeaderSize;
    if (open_set_ != tid) {
      msg_bytes_ += kSetHeaderSize;
      open_set_ = tid;
    }
    msg_bytes_ += sizeof(Record);
    ++msg_records_;
    return true;
  }

  const size_t max_message_;
  const std::vector<TemplateLayout> templates_;
  const uint32_t domain_;
  const bool sampling_;
  uint32_t export_time_ = 0;
  // Declared before fbuf_: both must outlive it.
  std::vector<uint8_t> out_;
  std::vector<uint8_t> options_out_;
  std::unique_ptr<fbInfoModel_t, InfoModelDeleter> model_;
  std::unique_ptr<fBuf_t, BufferDeleter> fbuf_;
  fbExporter_t* exporter_ = nullptr;  // owned by fbuf_
  size_t templates_size_ = 0;         // both template records, bytes

  // Mirror of the message libfixbuf is building.
  size_t msg_bytes_ = 0;  // 0: no open message
  size_t msg_records_ = 0;
  uint16_t open_set_ = 0;
  uint16_t current_tid_ = 0;
  bool size_warning_logged_ = false;
};

}  // namespace

std::unique_ptr<MessageEncoder> makeFixbufEncoder(uint32_t observation_domain, size_t max_message,
                                                  bool with_direction, bool biflow, bool sampling) {
  return std::make_unique<FixbufEncoder>(observation_domain, max_message, with_direction, biflow, sampling);
}

}  // namespace flowfold::ipfix
