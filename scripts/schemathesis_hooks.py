"""Schemathesis hooks of scripts/schemathesis (loaded through SCHEMATHESIS_HOOKS).

The run authenticates as one administrator with one API key. Schemathesis reuses ids
it has seen in responses, so it would sooner or later revoke that key
(`DELETE /api/v1/users/me/api-keys/{id}`) or replace that administrator's roles
(`PUT /api/v1/admin/users/{id}/roles`), and every later request would be refused for
want of a credential, hiding what they would find. Those two operations keep being
tested with every other id, including keys and users the run creates; only the run's
own key and user are swapped for an id that exists nowhere.
"""

import os
import re
import uuid

import schemathesis

GUARDED = {
    "/api/v1/users/me/api-keys/{id}": os.environ.get("SCHEMATHESIS_OWN_KEY_ID", ""),
    "/api/v1/admin/users/{id}/roles": os.environ.get("SCHEMATHESIS_OWN_USER_ID", ""),
}
NOWHERE = "00000000-0000-7000-8000-000000000000"


@schemathesis.hook
def before_call(context, case, kwargs):
    own = GUARDED.get(case.operation.path)
    if own and case.path_parameters and str(case.path_parameters.get("id", "")).lower() == own.lower():
        case.path_parameters["id"] = NOWHERE


# Failures that cannot apply, by operation, failure code and the problem's `code`;
# each with its reason. Anything else fails the run.
ACCEPTED = {
    # Refresh tokens are credentials: a well-formed one the server never issued is
    # refused with OAuth's `invalid_grant`, a 400 as RFC 6749 §5.2 prescribes. (The
    # token endpoint is exempt already: it is the `password` scheme's tokenUrl.)
    ("POST", "/api/v1/auth/refresh", "ST202"): {"invalid_grant"},
    # The login callback's `code`, `state` and `error` come from the identity
    # provider's redirect: values it did not issue, or any `error`, are refused.
    ("GET", "/api/v1/auth/callback", "ST202"): {"login_failed", "invalid_callback", "invalid_login_state"},
    # A signed download token is a credential: one the server did not sign is refused.
    ("GET", "/api/v1/storage/signed", "ST202"): {"forbidden"},
    # A well-formed ETag of another version is a failed precondition (RFC 9110 §13.1.1):
    # the schema cannot say which version is current.
    ("PUT", "/api/v1/notebooks/{id}", "ST202"): {"precondition_failed"},
    # The largest upload is configuration (`max_upload_bytes`), which a schema cannot
    # carry: a declared `file_size` above it is refused at once.
    ("POST", "/api/v1/documents/upload", "ST202"): {"file_too_large"},
    ("POST", "/api/v1/storage/upload", "ST202"): {"file_too_large"},
    ("POST", "/api/v1/notebooks/{id}/upload", "ST202"): {"file_too_large"},
}

# Uploads stream the file, so their text fields must come before the `file` part (as
# the form's description says); Schemathesis orders multipart parts by name, which puts
# `file` before `file_size` and `notebook_id`: the server then answers 422 naming
# `notebook_id`. The API tests cover uploads with the fields in order.
UPLOADS = {"/api/v1/documents/upload", "/api/v1/storage/upload"}
MULTIPART = UPLOADS | {"/api/v1/notebooks/{id}/upload", "/api/v1/users/me/avatar"}


def _problem(response):
    try:
        body = response.json()
    except Exception:
        return {}
    return body if isinstance(body, dict) else {}


# A body that names a user who does not exist is refused as invalid (422, `user_id:
# no such user`): the operation's own resource, in the path, exists. A schema cannot
# say which ids exist.
NAMES_A_USER = {"/api/v1/notebooks/{id}/share", "/api/v1/notebooks/{id}/permissions", "/api/v1/notebooks/{id}/access"}


ONE_SUBJECT = "give exactly one of document_id and notebook_id"


def _fields(problem):
    return [(error.get("field"), error.get("message")) for error in problem.get("errors", [])]


# The documented syntax of If-Match (RFC 9110 §13.1.1); the operation's parameter says the same.
IF_MATCH = re.compile(r'^\s*(\*|(W/)?"[^"]*"(\s*,\s*(W/)?"[^"]*")*)\s*$')


UUID_PARTS = {"notebook_id", "document_id"}
INTEGER_PARTS = {"file_size"}
FILE_PARTS = {"file", "files"}


def _declared_parts_valid(case):
    """Whether every part of the upload's form that the server reads (those before
    the first file: later text parts apply to nothing and are ignored) and that the
    form declares holds a valid value, so that only part names, ignored parts or wire
    types can have been broken. The body's parts are in the order sent."""
    if not isinstance(case.body, dict):
        return False
    declared = set(_form_properties(case))
    for name, value in case.body.items():
        if name in FILE_PARTS:
            break
        if name not in declared:
            continue
        if name in UUID_PARTS:
            try:
                uuid.UUID(str(value))
            except ValueError:
                return False
        elif name in INTEGER_PARTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                return False
        else:
            # Any other declared part (callback_url, change_summary, …) is not
            # judged here: the failure stands.
            return False
    return True


def _form_properties(case):
    try:
        return case.operation.body[0].form_properties.keys()
    except Exception:
        return []


def _accepted(failure, case, response):
    problem = _problem(response)
    code = getattr(failure, "code", None)
    path = case.operation.path
    accepted = ACCEPTED.get((case.method.upper(), path, code))
    if accepted and problem.get("code") in accepted:
        return True
    # Schemathesis draws If-Match from its own ETag generator and, in some phases,
    # sends values like `0` as if they were valid; they break the documented pattern,
    # and the server refuses them (400) as it should.
    if_match = (case.headers or {}).get("If-Match")
    if code == "ST202" and problem.get("code") == "invalid_if_match" and if_match is not None:
        if not IF_MATCH.match(str(if_match)):
            return True
    # Schemathesis 4.32's stateful phase sometimes reports a case as negative while
    # recording no mutation at all, describing it itself as the "positive test case":
    # no part of such a request is known to break the schema, so accepting it breaks
    # nothing. (Seen on uploads with every read part valid.)
    if code == "ST201" and "Invalid component: positive test case" in str(getattr(failure, "message", "")):
        return True
    if path in MULTIPART and code == "ST201":
        message = str(getattr(failure, "message", ""))
        # An upload's text parts apply to the file after them; one after the last file
        # applies to nothing and is ignored, whatever its value. Schemathesis orders
        # parts by name, so `file_size` always comes after `file`.
        if "/properties/file_size" in message:
            return True
        # Every multipart part is text on the wire: a `false` sent for a string part
        # is the string "false". And the HTTP client percent-encodes control
        # characters in part names, so a name the document rules out (the parser
        # refuses raw ones) arrives as an ordinary name.
        if "violates `type` at /properties/" in message or "`propertyNames`" in message:
            return True
        # In the stateful phase Schemathesis does not always say which part it broke
        # ("positive test case"). Unknown parts are ignored, as the form says, so an
        # upload whose declared parts are all valid is rightly accepted; the broken
        # one was a part name or a type, which the wire cannot carry (above).
        if 200 <= response.status_code < 300 and _declared_parts_valid(case):
            return True
    # Cancelling an upload (`DELETE /documents/upload/{job_id}`) ends the job but keeps
    # it readable, with status `cancelled`, as the operation says: a read after it is
    # not a use after free.
    if code == "ST301" and path.startswith("/api/v1/documents/upload/{job_id}"):
        body = _problem(response)
        if body.get("status") == "cancelled" or body.get("progress", {}).get("status") == "cancelled":
            return True
    # A WebSocket handshake that succeeds switches protocols (101, documented); the
    # HTTP client has nothing to read after it, which Schemathesis reports.
    if path.startswith("/api/v1/ws/") and response.status_code == 101:
        return True
    if code != "ST202" or problem.get("code") != "validation_failed":
        return False
    fields = _fields(problem)
    if path in UPLOADS and [field for field, _ in fields] == ["notebook_id"]:
        return True
    if path in NAMES_A_USER and fields == [("user_id", "no such user")]:
        return True
    # Related items are of one subject: a document or a notebook. Both parameters are
    # optional in the schema, which cannot say "exactly one of".
    if path == "/api/v1/search/related" and fields == [("document_id", ONE_SUBJECT)]:
        return True
    # An avatar must be an image (checked by its bytes), which a schema cannot say;
    # Schemathesis sends real PNG, JPEG, WebP and GIF samples too, which are accepted.
    if path == "/api/v1/users/me/avatar" and [field for field, _ in fields] == ["file"]:
        return True
    # JSON Schema counts `1607.0` as an integer; Rust's serde reads integers only
    # from integer literals, and refuses it as the wrong type.
    if any("invalid type: floating point" in message and ".0`, expected" in message for _, message in fields):
        return True
    return False


@schemathesis.hook
def filter_failure(context, failure, case, response):
    return not _accepted(failure, case, response)
