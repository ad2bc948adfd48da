//! What SMS text costs and how Vietnamese law wants it dressed: the GSM-7 alphabet, segment
//! counts, Vietnamese letters without their marks, and the "[QC]" label of advertising.
//!
//! A message in GSM-7 takes 160 characters in one segment, 153 per segment once split; any
//! other character turns the whole message into UCS-2: 70 in one segment, 67 per segment once
//! split. Vietnamese with its marks is UCS-2 (and so costs about twice as much); callers who
//! want the cheaper form send [`unaccented`] text.

/// GSM 03.38's basic alphabet (the escape character excluded).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// GSM 03.38's extension table: each takes two septets (escape + character).
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

const GSM7_SEGMENT_SEPTETS: u32 = 160;
const GSM7_SEGMENT_SEPTETS_SPLIT: u32 = 153;
const UCS2_SEGMENT_UNITS: u32 = 70;
const UCS2_SEGMENT_UNITS_SPLIT: u32 = 67;

/// The label Decree 91/2020 requires at the start of advertising SMS.
const ADVERTISING_LABEL: &str = "[QC] ";

fn gsm7_septets(character: char) -> Option<u32> {
    if GSM7_BASIC.contains(character) {
        Some(1)
    } else if GSM7_EXTENSION.contains(character) {
        Some(2)
    } else {
        None
    }
}

/// Whether the whole text can go in the GSM-7 alphabet.
pub fn is_gsm7(text: &str) -> bool {
    text.chars()
        .all(|character| gsm7_septets(character).is_some())
}

/// How many SMS segments the text takes (at least 1: an empty text is still one message).
pub fn parts(text: &str) -> u32 {
    let gsm7_length: Option<u32> = text.chars().map(gsm7_septets).sum();
    let (length, single, split) = match gsm7_length {
        Some(septets) => (septets, GSM7_SEGMENT_SEPTETS, GSM7_SEGMENT_SEPTETS_SPLIT),
        None => {
            let units = u32::try_from(text.encode_utf16().count()).unwrap_or(u32::MAX);
            (units, UCS2_SEGMENT_UNITS, UCS2_SEGMENT_UNITS_SPLIT)
        }
    };
    if length <= single {
        1
    } else {
        length.div_ceil(split)
    }
}

/// Vietnamese letters and the ASCII letter each loses its marks to.
const VIETNAMESE_LETTERS: [(&str, char); 14] = [
    ("àáạảãâầấậẩẫăằắặẳẵ", 'a'),
    ("ÀÁẠẢÃÂẦẤẬẨẪĂẰẮẶẲẴ", 'A'),
    ("èéẹẻẽêềếệểễ", 'e'),
    ("ÈÉẸẺẼÊỀẾỆỂỄ", 'E'),
    ("ìíịỉĩ", 'i'),
    ("ÌÍỊỈĨ", 'I'),
    ("òóọỏõôồốộổỗơờớợởỡ", 'o'),
    ("ÒÓỌỎÕÔỒỐỘỔỖƠỜỚỢỞỠ", 'O'),
    ("ùúụủũưừứựửữ", 'u'),
    ("ÙÚỤỦŨƯỪỨỰỬỮ", 'U'),
    ("ỳýỵỷỹ", 'y'),
    ("ỲÝỴỶỸ", 'Y'),
    ("đ", 'd'),
    ("Đ", 'D'),
];

/// The combining marks Vietnamese uses when text comes decomposed (NFD): grave, acute,
/// circumflex, tilde, breve, hook above, horn, dot below.
const VIETNAMESE_COMBINING_MARKS: &str = "\u{300}\u{301}\u{302}\u{303}\u{306}\u{309}\u{31b}\u{323}";

/// Vietnamese text with every tone and vowel mark dropped and đ/Đ as d/D, composed or
/// decomposed alike; other characters are left as they are.
pub fn unaccented(text: &str) -> String {
    text.chars()
        .filter(|character| !VIETNAMESE_COMBINING_MARKS.contains(*character))
        .map(|character| {
            VIETNAMESE_LETTERS
                .iter()
                .find(|(letters, _)| letters.contains(character))
                .map_or(character, |(_, plain)| *plain)
        })
        .collect()
}

/// Whether the text already starts with an advertising label ("[QC]" or "[AD]").
pub fn is_labelled_advertising(text: &str) -> bool {
    let start = text.trim_start();
    ["[QC]", "[AD]"].iter().any(|label| {
        start
            .get(..label.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(label))
    })
}

/// The text with the "[QC] " label in front, unless it already carries one.
pub fn advertising_text(text: &str) -> String {
    if is_labelled_advertising(text) {
        text.to_owned()
    } else {
        format!("{ADVERTISING_LABEL}{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_covers_ascii_letters_and_the_extension_table() {
        assert!(is_gsm7("Hello, world! 0-9 @£$ é"));
        assert!(is_gsm7("{braces} [brackets] ~ | € ^ \\"));
        // "à" and "é" happen to be GSM-7; most Vietnamese letters are not.
        assert!(is_gsm7("Xin chào"));
        assert!(!is_gsm7("Xin chào bạn"));
        assert!(!is_gsm7("đ"));
        assert!(!is_gsm7("emoji 🙂"));
        assert!(is_gsm7(""));
    }

    #[test]
    fn gsm7_segments_are_160_then_153() {
        assert_eq!(parts(""), 1);
        assert_eq!(parts(&"a".repeat(160)), 1);
        assert_eq!(parts(&"a".repeat(161)), 2);
        assert_eq!(parts(&"a".repeat(306)), 2);
        assert_eq!(parts(&"a".repeat(307)), 3);
        // Extension characters take two septets each.
        assert_eq!(parts(&"€".repeat(80)), 1);
        assert_eq!(parts(&"€".repeat(81)), 2);
    }

    #[test]
    fn ucs2_segments_are_70_then_67() {
        assert_eq!(parts(&"ệ".repeat(70)), 1);
        assert_eq!(parts(&"ệ".repeat(71)), 2);
        assert_eq!(parts(&"ệ".repeat(134)), 2);
        assert_eq!(parts(&"ệ".repeat(135)), 3);
        // One accented letter turns the whole text into UCS-2.
        let mostly_ascii = format!("{}đ", "a".repeat(70));
        assert_eq!(parts(&mostly_ascii), 2);
        // Characters outside the BMP take two UTF-16 units.
        assert_eq!(parts(&"🙂".repeat(35)), 1);
        assert_eq!(parts(&"🙂".repeat(36)), 2);
    }

    #[test]
    fn unaccented_drops_every_vietnamese_mark() {
        for (letters, plain) in VIETNAMESE_LETTERS {
            for letter in letters.chars() {
                assert_eq!(
                    unaccented(&letter.to_string()),
                    plain.to_string(),
                    "{letter}"
                );
            }
        }
        assert_eq!(
            unaccented("Cảm ơn quý khách đã mua hàng tại Đà Nẵng!"),
            "Cam on quy khach da mua hang tai Da Nang!"
        );
        // Decomposed text: "ệ" as e + circumflex + dot below, "ờ" as o + horn + grave.
        assert_eq!(unaccented("e\u{302}\u{323} o\u{31b}\u{300}"), "e o");
        assert!(is_gsm7(&unaccented(
            "Tiếng Việt có dấu: ắằẳẵặ ấầẩẫậ ếềểễệ ốồổỗộ ớờởỡợ ứừửữự ýỳỷỹỵ đĐ"
        )));
    }

    #[test]
    fn advertising_text_is_labelled_once() {
        assert_eq!(advertising_text("Giam 20%"), "[QC] Giam 20%");
        assert_eq!(advertising_text("[QC] Giam 20%"), "[QC] Giam 20%");
        assert_eq!(advertising_text("[qc]Giam"), "[qc]Giam");
        assert_eq!(advertising_text("[AD] Sale"), "[AD] Sale");
        assert_eq!(advertising_text("QC Giam"), "[QC] QC Giam");
        assert_eq!(advertising_text(""), "[QC] ");
    }
}
