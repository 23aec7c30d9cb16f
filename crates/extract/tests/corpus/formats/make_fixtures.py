"""Writes calendar.ics, contacts.vcf, analysis.ipynb and mailbox.mbox into the
current directory, with fixed dates and ids so that a rerun gives the same bytes.

Needs: pip install icalendar vobject nbformat (mailbox and email are stdlib).
Run by make.sh; see its header for what each file holds.
"""

import base64
import email.utils
import mailbox
import os
import struct
import zlib
from datetime import date, datetime, timezone
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import icalendar
import nbformat
import vobject
from nbformat import v4

STAMP = datetime(2024, 1, 1, 0, 0, 0, tzinfo=timezone.utc)


def marker(fmt):
    return f"The quartz lantern glows over the {fmt} marsh."


def make_ics(path):
    paris = ZoneInfo("Europe/Paris")
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Heron Institute//Fixture Maker 1.0//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")

    review = icalendar.Event()
    review.add("uid", "review-1@heron.example.org")
    review.add("dtstamp", STAMP)
    review.add("summary", "Quartz lantern review")
    # Long enough that icalendar folds it at 75 octets, inside the marker.
    review.add(
        "description",
        "Agenda for the review of the lantern at the hide. "
        + marker("ics")
        + " Bring boots, notebooks and the tally sheets.",
    )
    review.add("location", "Room 4, Heron House")
    review.add("dtstart", datetime(2024, 3, 14, 9, 30, tzinfo=paris))
    review.add("dtend", datetime(2024, 3, 14, 11, 0, tzinfo=paris))
    organizer = icalendar.vCalAddress("mailto:pii.ics@example.com")
    organizer.params["cn"] = icalendar.vText("Ada Example")
    review.add("organizer", organizer)
    attendee = icalendar.vCalAddress("mailto:bo.sample@example.org")
    attendee.params["cn"] = icalendar.vText("Bo Sample")
    attendee.params["role"] = icalendar.vText("REQ-PARTICIPANT")
    review.add("attendee", attendee)
    cal.add_component(review)

    count = icalendar.Event()
    count.add("uid", "count-1@heron.example.org")
    count.add("dtstamp", STAMP)
    count.add("summary", "Heron count, north; south")
    count.add("dtstart", date(2024, 3, 15))
    count.add("dtend", date(2024, 3, 16))
    cal.add_component(count)

    todo = icalendar.Todo()
    todo.add("uid", "todo-1@heron.example.org")
    todo.add("dtstamp", STAMP)
    todo.add("summary", "Buy pebbles")
    todo.add("due", date(2024, 3, 13))
    todo.add("status", "NEEDS-ACTION")
    cal.add_component(todo)

    cal.add_missing_timezones()
    with open(path, "wb") as f:
        f.write(cal.to_ical())


def make_vcf(path):
    ada = vobject.vCard()
    ada.add("n").value = vobject.vcard.Name(family="Example", given="Ada")
    ada.add("fn").value = "Ada Example"
    mail = ada.add("email")
    mail.value = "pii.vcf@example.com"
    mail.type_param = "INTERNET"
    tel = ada.add("tel")
    tel.value = "+44 20 7946 0958"
    tel.type_param = "WORK"
    ada.add("org").value = ["Heron Institute"]
    ada.add("title").value = "Senior Heron Counter"
    adr = ada.add("adr")
    adr.value = vobject.vcard.Address(
        street="4 Heron House, Marsh Lane",
        city="Norwich",
        code="NR1 1AA",
        country="United Kingdom",
    )
    adr.type_param = "WORK"
    # Long enough that vobject folds it at 75 octets, inside the marker.
    ada.add("note").value = (
        "Met at the spring census; knows every reed bed. " + marker("vcf")
    )
    ada.add("uid").value = "ada-example@heron.example.org"

    bo = vobject.vCard()
    bo.add("n").value = vobject.vcard.Name(family="Sämple", given="Børge")
    bo.add("fn").value = "Børge Sämple"
    mail = bo.add("email")
    mail.value = "bo.sample@example.org"
    mail.type_param = "INTERNET"
    bo.add("uid").value = "bo-sample@heron.example.org"

    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(ada.serialize())
        f.write(bo.serialize())


def tiny_png():
    """A 1x1 opaque grey PNG, built by hand so no imaging library is needed."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)  # 1x1, 8-bit greyscale
    idat = zlib.compress(b"\x00\x80", 9)  # filter byte 0, one grey pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def make_ipynb(path):
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    nb.metadata["language_info"] = {"name": "python", "version": "3.11"}
    md = v4.new_markdown_cell("# Heron analysis\n\n" + marker("ipynb"))
    md["id"] = "cell-markdown"
    code1 = v4.new_code_cell('print("herons counted")', execution_count=1)
    code1["id"] = "cell-print"
    code1.outputs = [v4.new_output("stream", name="stdout", text="herons counted\n")]
    code2 = v4.new_code_cell("show_map()", execution_count=2)
    code2["id"] = "cell-map"
    code2.outputs = [
        v4.new_output(
            "execute_result",
            data={
                "text/plain": "<Heron map 1x1>",
                "image/png": base64.b64encode(tiny_png()).decode("ascii"),
            },
            execution_count=2,
        )
    ]
    raw = v4.new_raw_cell("raw cell: heron tally 42")
    raw["id"] = "cell-raw"
    nb.cells = [md, code1, code2, raw]
    nbformat.validate(nb)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        nbformat.write(nb, f)


def make_mbox(path):
    if os.path.exists(path):
        os.remove(path)
    box = mailbox.mbox(path, create=True)
    senders = [
        ("Ada Example", "pii.mbox@example.com"),
        ("Bo Sample", "bo.sample@example.org"),
        ("Ada Example", "pii.mbox@example.com"),
    ]
    bodies = [
        "Hello,\n\n" + marker("mbox") + "\nTwo grey herons at the north pool.\n",
        "Hello,\n\nThe tally is below.\nFrom the hide we saw three egrets.\nNothing else.\n",
        "Hello,\n\nThe counts are in the attached file.\n",
    ]
    try:
        for i, ((name, addr), body) in enumerate(zip(senders, bodies), start=1):
            when = datetime(2024, 1, i, 8, 0, 0, tzinfo=timezone.utc)
            msg = EmailMessage()
            msg["From"] = email.utils.formataddr((name, addr))
            msg["To"] = "Heron List <herons@example.org>"
            msg["Subject"] = f"Heron sighting {i}"
            msg["Date"] = email.utils.format_datetime(when)
            msg["Message-ID"] = f"<sighting-{i}@heron.example.org>"
            msg.set_content(body)
            if i == 3:
                msg.add_attachment(
                    b"species,count\ngrey heron,2\nlittle egret,3\n",
                    maintype="text",
                    subtype="csv",
                    filename="count.csv",
                )
                msg.set_boundary("heron-boundary-3")
            m = mailbox.mboxMessage(msg)
            m.set_from(addr, when.timetuple())
            box.add(m)
        box.flush()
    finally:
        box.close()


if __name__ == "__main__":
    make_ics("calendar.ics")
    make_vcf("contacts.vcf")
    make_ipynb("analysis.ipynb")
    make_mbox("mailbox.mbox")
