#!/usr/bin/perl
# Writes message.msg: an Outlook message laid out as MS-OXMSG describes, in an OLE compound
# file written by OLE::Storage_Lite (Debian: apt-get install -y libole-storage-lite-perl).
#
#   Root Entry
#     __properties_version1.0          32-byte header, then 16-byte entries (dates, flags, sizes)
#     __substg1.0_<ID><TYPE>           one stream per string (001F, UTF-16LE, no BOM, no NUL)
#     __nameid_version1.0/             named-property mapping, its three streams empty
#     __recip_version1.0_#00000000/    "Bo Sample" (To), 8-byte-header property stream
#     __recip_version1.0_#00000001/    "Cy Other" (Cc)
#     __attach_version1.0_#00000000/   tally.txt (ATTACH_BY_VALUE)
#
# Some habits of OLE::Storage_Lite are worked around so that readers which look names up through
# the sibling trees (the cfb crate does) find every stream, the directory follows MS-CFB, and
# runs are byte-identical: siblings are passed in CFB order (shorter name first, then
# case-insensitive), because the library builds each sibling tree by halving the list as given;
# and _savePpsWk is replaced so that every entry is black, streams carry a nil CLSID (the root
# the IMessage one, {00020D0B-0000-0000-C000-000000000046}), empty streams start at ENDOFCHAIN
# rather than sector 0, and no timestamps are written. The header's minor version is set
# afterwards to the 0x003E that MS-CFB asks for (the library writes 0x003B).
use strict;
use warnings;
use Encode qw(encode);
use FindBin;
use OLE::Storage_Lite;
use Time::Local qw(timegm);

# --- message content -------------------------------------------------------------------------

my $body = "Hello Bo,\r\n\r\nThe quartz lantern glows over the msg marsh.\r\n"
         . "The tally is attached.\r\n\r\nAda";
my $tally = "species,count\r\ngrey heron,2\r\n"
          . "Attachment marker: the heron tally is forty-two.\r\n";

my @recipients = (
    { name => 'Bo Sample', address => 'bo.sample@example.org', type => 1 },  # MAPI_TO
    { name => 'Cy Other',  address => 'cy.other@example.org',  type => 2 },  # MAPI_CC
);
my @attachments = (
    { filename => 'tally.txt', mime => 'text/plain', data => $tally },
);

# --- property types and values ---------------------------------------------------------------

use constant {
    PT_LONG    => 0x0003,
    PT_BOOLEAN => 0x000B,
    PT_SYSTIME => 0x0040,
    PT_UNICODE => 0x001F,
    PT_BINARY  => 0x0102,
};
use constant PROPATTR_RW => 0x00000006;    # readable | writable

# FILETIME: 100 ns ticks since 1601-01-01 UTC.
sub filetime {
    my ($y, $mo, $d, $h, $mi, $s) = @_;
    return (timegm($s, $mi, $h, $d, $mo - 1, $y) + 11_644_473_600) * 10_000_000;
}

sub str { [PT_UNICODE, $_[0]] }
sub bin { [PT_BINARY, $_[0]] }
sub long { [PT_LONG, $_[0]] }
sub bool { [PT_BOOLEAN, $_[0] ? 1 : 0] }
sub systime { [PT_SYSTIME, filetime(@_)] }

sub ucs { encode('UTF-16LE', $_[0]) }

# Streams of one message / recipient / attachment object: the property stream (header then one
# entry per property, by tag) and one __substg1.0_ stream per variable-length property.
sub property_streams {
    my ($header, %props) = @_;
    my $stream = $header;
    my @files;
    for my $id (sort { $a <=> $b } keys %props) {
        my ($type, $value) = @{ $props{$id} };
        my $tag = ($id << 16) | $type;
        my $raw;
        if ($type == PT_UNICODE) {
            my $data = ucs($value);
            push @files, [sprintf('__substg1.0_%08X', $tag), $data];
            $raw = pack('VV', length($data) + 2, 0);    # size counts the absent terminator
        } elsif ($type == PT_BINARY) {
            push @files, [sprintf('__substg1.0_%08X', $tag), $value];
            $raw = pack('VV', length($value), 0);
        } elsif ($type == PT_LONG) {
            $raw = pack('VV', $value, 0);
        } elsif ($type == PT_BOOLEAN) {
            $raw = pack('vvV', $value, 0, 0);
        } elsif ($type == PT_SYSTIME) {
            $raw = pack('Q<', $value);
        } else {
            die sprintf("unhandled property type %04X\n", $type);
        }
        $stream .= pack('VV', $tag, PROPATTR_RW) . $raw;
    }
    return (['__properties_version1.0', $stream], @files);
}

# --- compound file ---------------------------------------------------------------------------

# CFB sibling order (MS-CFB 2.6.4): shorter names first, then by upper-cased code units.
sub cfb_sorted {
    return sort {
        length($a->[0]) <=> length($b->[0]) or uc($a->[0]) cmp uc($b->[0])
    } @_;
}

# A node is [name, data] for a stream or [name, [children]] for a storage.
sub pps {
    my ($node) = @_;
    my ($name, $content) = @$node;
    return ref $content
        ? OLE::Storage_Lite::PPS::Dir->new(ucs($name), undef, undef,
                                           [map { pps($_) } cfb_sorted(@$content)])
        : OLE::Storage_Lite::PPS::File->new(ucs($name), $content);
}

{
    no warnings 'redefine';
    my $imessage = pack('VvvC8', 0x00020D0B, 0, 0, 0xC0, 0, 0, 0, 0, 0, 0, 0x46);
    *OLE::Storage_Lite::PPS::_savePpsWk = sub ($$) {
        my ($pps, $info) = @_;
        my $is_root = $pps->{Type} == OLE::Storage_Lite::PpsType_Root();
        my $start = $pps->{StartBlock} // 0;
        # An empty stream owns no sector: its start is ENDOFCHAIN, not the library's 0.
        $start = 0xFFFFFFFE if $pps->{Type} == OLE::Storage_Lite::PpsType_File() && !$pps->{Size};
        print { $info->{_FILEH_} } pack(
            'a64 v C C V V V a16 V a8 a8 V V V',
            $pps->{Name}, length($pps->{Name}) + 2, $pps->{Type}, 1,    # 1 = black
            $pps->{PrevPps}, $pps->{NextPps}, $pps->{DirPps},
            $is_root ? $imessage : "\0" x 16, 0,                        # CLSID, state bits
            "\0" x 8, "\0" x 8,                                         # created, modified
            $start, $pps->{Size} // 0, 0);
    };
}

my @recip_storages;
for my $i (0 .. $#recipients) {
    my $r = $recipients[$i];
    push @recip_storages, [sprintf('__recip_version1.0_#%08X', $i), [property_streams(
        "\0" x 8,
        0x0C15 => long($r->{type}),         # PR_RECIPIENT_TYPE
        0x0FFE => long(6),                  # PR_OBJECT_TYPE: MAPI_MAILUSER
        0x3000 => long($i),                 # PR_ROWID
        0x3001 => str($r->{name}),          # PR_DISPLAY_NAME
        0x3002 => str('SMTP'),              # PR_ADDRTYPE
        0x3003 => str($r->{address}),       # PR_EMAIL_ADDRESS
        0x39FE => str($r->{address}),       # PR_SMTP_ADDRESS
    )]];
}

my @attach_storages;
for my $i (0 .. $#attachments) {
    my $att = $attachments[$i];
    (my $ext = $att->{filename}) =~ s/^.*(?=\.)//;
    push @attach_storages, [sprintf('__attach_version1.0_#%08X', $i), [property_streams(
        "\0" x 8,
        0x0E21 => long($i),                 # PR_ATTACH_NUM
        0x0FFE => long(7),                  # PR_OBJECT_TYPE: MAPI_ATTACH
        0x3001 => str($att->{filename}),    # PR_DISPLAY_NAME
        0x3701 => bin($att->{data}),        # PR_ATTACH_DATA_BIN
        0x3703 => str($ext),                # PR_ATTACH_EXTENSION
        0x3704 => str($att->{filename}),    # PR_ATTACH_FILENAME (fits 8.3)
        0x3705 => long(1),                  # PR_ATTACH_METHOD: ATTACH_BY_VALUE
        0x3707 => str($att->{filename}),    # PR_ATTACH_LONG_FILENAME
        0x370B => long(-1),                 # PR_RENDERING_POSITION: none
        0x370E => str($att->{mime}),        # PR_ATTACH_MIME_TAG
    )]];
}

# Top-level header: reserved(8), next recipient id, next attachment id, recipient count,
# attachment count, reserved(8).
my $header = pack('x8 V4 x8', scalar @recipients, scalar @attachments,
                  scalar @recipients, scalar @attachments);

my @top = property_streams(
    $header,
    0x001A => str('IPM.Note'),                              # PR_MESSAGE_CLASS
    0x0037 => str('Heron survey results'),                  # PR_SUBJECT
    0x0039 => systime(2024, 3, 14, 9, 30, 0),               # PR_CLIENT_SUBMIT_TIME
    0x0C1A => str('Ada Example'),                           # PR_SENDER_NAME
    0x0C1E => str('SMTP'),                                  # PR_SENDER_ADDRTYPE
    0x0C1F => str('pii.msg@example.com'),                   # PR_SENDER_EMAIL_ADDRESS
    0x0E03 => str('Cy Other'),                              # PR_DISPLAY_CC
    0x0E04 => str('Bo Sample'),                             # PR_DISPLAY_TO
    0x0E06 => systime(2024, 3, 14, 9, 31, 0),               # PR_MESSAGE_DELIVERY_TIME
    0x0E07 => long(1),                                      # PR_MESSAGE_FLAGS: MSGFLAG_READ
    0x0E1B => bool(1),                                      # PR_HASATTACH
    0x1000 => str($body),                                   # PR_BODY
    0x1035 => str('<heron-survey-1@example.com>'),          # PR_INTERNET_MESSAGE_ID
    0x340D => long(0x00040000),                             # PR_STORE_SUPPORT_MASK: STORE_UNICODE_OK
    0x5D01 => str('pii.msg@example.com'),                   # PR_SENDER_SMTP_ADDRESS
);

my $nameid = ['__nameid_version1.0', [
    ['__substg1.0_00020102', ''],    # GUID stream
    ['__substg1.0_00030102', ''],    # entry stream
    ['__substg1.0_00040102', ''],    # string stream
]];

my $root = OLE::Storage_Lite::PPS::Root->new(undef, undef,
    [map { pps($_) } cfb_sorted(@top, $nameid, @recip_storages, @attach_storages)]);

my $out = "$FindBin::Bin/message.msg";
$root->save($out) or die "cannot write $out: $!\n";

# The library writes minor version 0x003B; MS-CFB asks for 0x003E with major version 3.
open(my $fh, '+<:raw', $out) or die "cannot reopen $out: $!\n";
seek($fh, 24, 0) or die;
print {$fh} pack('v', 0x003E);
close($fh) or die "cannot write $out: $!\n";
