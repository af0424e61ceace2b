"""Build gristmill's Chinese sample from Debian packages installed with apt-get (Python stdlib only).

Writes, under ``--out`` (default: this folder):

- ``corpus.jsonl.gz``: crawl-like Chinese documents (``id``, ``url``, ``text``, ``source``) with
  injected defects, the way ``shared/data/corpus`` is built for English;
- ``corpus.labels.jsonl.gz``: the ground truth, same order (``id``, ``defects``, ``dup_of``, ``meta``);
- ``task/{train,dev,test}.jsonl``: the man-page section task (``text``, ``label``): the DESCRIPTION
  of a Simplified Chinese manual page, labelled with its section (1 user commands, 3 library
  functions, 7 overviews and conventions, 8 system administration);
- ``heldout.jsonl.gz``: Debian's Simplified Chinese package descriptions (``Translation-zh_CN``),
  never in the corpus, for measuring a tokenizer on text it has not seen;
- ``provenance.tsv``: every package used, its version and how many base documents it gave.

Deterministic: the same package versions and arguments give byte-identical files (fixed seeds,
sorted file lists, gzip without timestamps). The task is drawn first and its pages (in both
Simplified and Traditional Chinese) never become corpus documents; any other corpus document sharing
a 13-character run with a task text is dropped before defects are injected, except the planted
``contamination`` documents, which exist so decontamination can be measured.

Needs (Debian 12)::

    apt-get install -y mandoc manpages-zh debian-reference-zh-cn debian-faq-zh-cn maint-guide-zh-cn \\
        gimp-help-zh-cn fortunes-zh debian-reference-en debian-reference-ja
    apt-get install -y --no-install-recommends libreoffice-help-zh-cn debian-handbook   # --size large only
    apt-get update -o Acquire::Languages=zh_CN      # Translation-zh_CN, for heldout.jsonl.gz

Usage::

    python sample/zh/build.py                       # the shipped small sample (a few MB)
    python sample/zh/build.py --size large --out /tmp/zh-large   # every document of every source
    python sample/zh/build.py --size large --no-extra-sources --out /tmp/zh-large-old   # without lo-help, handbook

The large size adds two sources the small one never reads (``EXTRA_SOURCES``): ``lo-help`` (LibreOffice's
zh-CN help) and ``handbook`` (the Debian Administrator's Handbook, zh-CN). ``--no-extra-sources`` leaves
them out, which gives the large size as it was before they were added.
"""

from __future__ import annotations

import argparse
import base64
import glob
import gzip
import hashlib
import html.parser
import io
import json
import os
import random
import re
import subprocess
import unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAN_ROOT = Path("/usr/share/man")
DEBREF = Path("/usr/share/debian-reference")
FAQ = Path("/usr/share/doc/debian/FAQ/zh-cn")
MAINT = Path("/usr/share/doc/maint-guide-zh-cn/html")
GIMP = Path("/usr/share/gimp/2.0/help/zh_CN")
FORTUNES = Path("/usr/share/games/fortunes")
LO_HELP = Path("/usr/share/libreoffice/help/zh-CN/text")
HANDBOOK = Path("/usr/share/doc/debian-handbook/html/zh-CN")
TRANSLATION = "/var/lib/apt/lists/*_dists_bookworm_main_i18n_Translation-zh%5fCN*"

PACKAGES = ["mandoc", "manpages-zh", "debian-reference-zh-cn", "debian-faq-zh-cn", "maint-guide-zh-cn",
            "gimp-help-zh-cn", "fortunes-zh", "debian-reference-en", "debian-reference-ja"]
# Read by the large size only (and listed in its provenance.tsv); --no-extra-sources leaves them out.
EXTRA_PACKAGES = ["libreoffice-help-zh-cn", "debian-handbook"]
EXTRA_SOURCES = ["lo-help", "handbook"]

# The task: four sections of the Simplified Chinese manual pages, with Chinese label names.
SECTIONS = {"1": "用户命令", "3": "库函数", "7": "概述与约定", "8": "系统管理"}
TASK_PER_CLASS = {"train": 32, "dev": 8, "test": 20}
TASK_MAX_CHARS = 300
CONTAMINATION_NGRAM = 13  # characters; the decontaminate step's default n-gram, counted in CJK characters

# Small sample: at most this many base documents per source (None: all of them).
# The extra sources have a cap of 0, so the small sample is what it was before they were added.
SMALL_CAPS = {"manpage": None, "debref": None, "faq": None, "maint-guide": None, "gimp-help": None, "fortune": 400,
              **dict.fromkeys(EXTRA_SOURCES, 0)}
MAX_DOC_CHARS = 6000

CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
OVERSTRIKE_RE = re.compile(r".\x08")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


# ------------------------------------------------------------------------------------------ helpers


def cjk_count(text: str) -> int:
    return len(CJK_RE.findall(text))


def is_chinese(text: str, min_cjk: int = 60, min_share: float = 0.3) -> bool:
    """Enough Han characters, and they make up a fair share of the non-space characters."""
    n = cjk_count(text)
    visible = sum(not c.isspace() for c in text)
    return n >= min_cjk and n >= min_share * max(1, visible)


def stable_rng(*parts: object) -> random.Random:
    return random.Random(hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest())


def cut(text: str, limit: int = MAX_DOC_CHARS) -> str:
    """At most ``limit`` characters, cut at a paragraph boundary when there is one."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    at = head.rfind("\n\n")
    return head[:at] if at > limit // 2 else head


def squeeze(text: str) -> str:
    lines = [ln.rstrip() for ln in text.replace("\r", "").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def package_version(name: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else "(not installed)"


# -------------------------------------------------------------------------------------- man pages


def render_man(path: Path) -> str | None:
    """A manual page as plain text (mandoc, 80 columns, overstrike removed, running header/footer dropped)."""
    raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    if raw.lstrip().startswith(b".so "):
        return None  # a redirect to another page
    proc = subprocess.run(["mandoc", "-T", "utf8", "-O", "width=80"], input=raw, capture_output=True)
    text = OVERSTRIKE_RE.sub("", proc.stdout.decode("utf-8", "replace"))
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) > 2:
        lines = lines[1:-1]
    return squeeze("\n".join(lines))


def man_pages(lang: str) -> list[tuple[str, str, Path]]:
    """(name, section, path) of every real file (not a symlink) under /usr/share/man/LANG, sorted."""
    pages = []
    for path in sorted((MAN_ROOT / lang).glob("man*/*")):
        if path.is_symlink() or not path.is_file():
            continue
        stem = path.name[:-3] if path.name.endswith(".gz") else path.name
        name, _, section = stem.rpartition(".")
        pages.append((name, section[:1], path))
    return pages


HEADING_RE = re.compile(r"^\S.*$")


def man_sections(text: str) -> dict[str, str]:
    """Heading line -> body, for the top-level headings of a rendered page."""
    out: dict[str, str] = {}
    heading, body = None, []
    for line in text.split("\n"):
        if HEADING_RE.match(line):
            if heading is not None:
                out.setdefault(heading, "\n".join(body))
            heading, body = line.strip(), []
        else:
            body.append(line)
    if heading is not None:
        out.setdefault(heading, "\n".join(body))
    return out


def description(text: str) -> str | None:
    """The DESCRIPTION section as one paragraph of at most TASK_MAX_CHARS characters, or None."""
    for heading, body in man_sections(text).items():
        if heading.startswith(("描述", "说明", "描叙", "DESCRIPTION", "详述", "介绍")):
            flat = re.sub(r"\s+", " ", body).strip()
            if len(flat) > TASK_MAX_CHARS:
                head = flat[:TASK_MAX_CHARS]
                stops = [head.rfind(p) for p in ("。", ". ", "；")]
                at = max(stops)
                flat = head[: at + 1] if at > TASK_MAX_CHARS // 2 else head
            return flat.strip()
    return None


def build_task(seed: int) -> tuple[dict[str, list[dict]], set[tuple[str, str]], list[str]]:
    """The frozen man-page section task, the (name, section) pages it uses, and all its texts."""
    by_class: dict[str, list[tuple[str, str]]] = {s: [] for s in SECTIONS}
    seen_texts: set[str] = set()
    for name, section, path in man_pages("zh_CN"):
        if section not in SECTIONS:
            continue
        text = render_man(path)
        desc = description(text) if text else None
        if not desc or not is_chinese(desc, min_cjk=15, min_share=0.25) or desc in seen_texts:
            continue
        seen_texts.add(desc)
        by_class[section].append((name, desc))
    splits: dict[str, list[dict]] = {k: [] for k in TASK_PER_CLASS}
    used: set[tuple[str, str]] = set()
    for section, items in by_class.items():
        items.sort(key=lambda it: hashlib.sha256(f"{seed}:{section}:{it[0]}".encode()).hexdigest())
        need = sum(TASK_PER_CLASS.values())
        if len(items) < need:
            raise SystemExit(f"section {section} has {len(items)} usable pages, the task needs {need}")
        at = 0
        for split in ("test", "dev", "train"):
            for name, desc in items[at: at + TASK_PER_CLASS[split]]:
                splits[split].append({"text": desc, "label": SECTIONS[section], "page": f"{name}({section})"})
                used.add((name, section))
            at += TASK_PER_CLASS[split]
    for split in splits:
        splits[split].sort(key=lambda r: hashlib.sha256(f"{seed}:{split}:{r['page']}".encode()).hexdigest())
    texts = [r["text"] for rows in splits.values() for r in rows]
    return splits, used, texts


# ------------------------------------------------------------------------------------------- HTML


class _Extractor(html.parser.HTMLParser):
    """Blocks of text of a DocBook-style HTML page; navigation headers, footers and tables of contents skipped.

    Also skipped: the page chrome of LibreOffice's help (``header``: logo and module menu; ``aside``: contents
    and index/search; ``footer``: debug info) and of the Debian Handbook (``id="banner"``, ``class="docnav"``:
    the ebook link and the previous/next/home bar). No page of the other sources has these tags, ids or classes.
    """

    SKIP_TAGS = {"script", "style", "head", "title", "header", "aside", "footer"}
    SKIP_CLASSES = {"navheader", "navfooter", "toc", "list-of-tables", "list-of-figures", "list-of-examples", "docnav"}
    SKIP_IDS = {"banner"}
    BLOCK = {"p", "div", "li", "pre", "tr", "dt", "dd", "table", "blockquote", "br", "ul", "ol", "dl", "hr",
             "h4", "h5", "h6", "title"}
    HEADINGS = {"h1", "h2", "h3"}
    VOID = {"br", "img", "meta", "link", "hr", "input", "col", "area", "base", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []
        self.blocks: list[tuple[str, str]] = []  # (kind: "h" or "p", text)
        self.buf: list[str] = []
        self.pre = 0
        self.in_heading = False

    def _skipping(self) -> bool:
        return bool(self.stack) and self.stack[-1][1]

    def _flush(self) -> None:
        text = "".join(self.buf)
        self.buf = []
        text = text if self.pre else re.sub(r"[ \t\r\n]+", " ", text)
        text = text.strip("\n") if self.pre else text.strip()
        if text:
            self.blocks.append(("h" if self.in_heading else "p", text))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        classes = set((attr.get("class") or "").split())
        skip = tag in self.SKIP_TAGS or bool(classes & self.SKIP_CLASSES) or attr.get("id") in self.SKIP_IDS
        if tag in self.BLOCK or tag in self.HEADINGS:
            self._flush()
        if tag in self.HEADINGS:
            self.in_heading = True
        if tag == "pre":
            self.pre += 1
        if tag not in self.VOID:
            self.stack.append((tag, self._skipping() or skip))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BLOCK or tag in self.HEADINGS:
            self._flush()
        if tag in self.HEADINGS:
            self.in_heading = False
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data: str) -> None:
        if not self._skipping():
            self.buf.append(data)


def html_sections(path: Path) -> list[str]:
    """A page split at h1-h3 headings; small sections merged into the next, long ones split at blocks."""
    parser = _Extractor()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    parser._flush()
    sections: list[list[str]] = [[]]
    for kind, text in parser.blocks:
        if kind == "h" and sum(map(len, sections[-1])) >= 400:
            sections.append([])
        sections[-1].append(text)
    out = []
    for blocks in sections:
        current: list[str] = []
        for b in blocks:
            if current and sum(map(len, current)) + len(b) > MAX_DOC_CHARS:
                out.append("\n\n".join(current))
                current = []
            current.append(b[:MAX_DOC_CHARS])
        if current:
            out.append("\n\n".join(current))
    return [squeeze(s) for s in out if s.strip()]


# ---------------------------------------------------------------------------------------- sources


def base_documents(task_pages: set[tuple[str, str]], extra: bool = False) -> list[dict]:
    """Every clean base document: (source, origin, url, text), in a fixed order; ``extra``: EXTRA_SOURCES too."""
    docs: list[dict] = []
    for lang, host in (("zh_CN", "manpages.example.cn"), ("zh_TW", "manpages.example.tw")):
        for name, section, path in man_pages(lang):
            if (name, section) in task_pages:
                continue  # the task's pages, in either script, never reach the corpus
            text = render_man(path)
            if text:
                docs.append({"source": "manpage", "origin": f"manpages-zh:{lang}/man{section}/{path.name}",
                             "url": f"https://{host}/man{section}/{name}.{section}.html", "text": cut(text)})
    html_sources = [
        ("debref", "debian-reference-zh-cn", sorted(DEBREF.glob("*.zh-cn.html")),
         "https://www.debian.org/doc/manuals/debian-reference/"),
        ("faq", "debian-faq-zh-cn", sorted(FAQ.glob("*.html")), "https://www.debian.org/doc/manuals/debian-faq/"),
        ("maint-guide", "maint-guide-zh-cn", sorted(MAINT.glob("*.html")),
         "https://www.debian.org/doc/manuals/maint-guide/"),
        ("gimp-help", "gimp-help-zh-cn", sorted(GIMP.rglob("*.html")), "https://docs.gimp.org/2.10/zh_CN/"),
    ]
    roots: dict[str, Path] = {}  # sources whose origin/url keep the path under this root (file names repeat)
    if extra:
        html_sources += [
            ("lo-help", "libreoffice-help-zh-cn", sorted(LO_HELP.rglob("*.html")),
             "https://help.libreoffice.org/7.4/zh-CN/text/"),
            ("handbook", "debian-handbook", sorted(HANDBOOK.glob("*.html")),
             "https://debian-handbook.info/browse/zh-CN/stable/"),
        ]
        roots = {"lo-help": LO_HELP, "handbook": HANDBOOK}
    for source, package, paths, base in html_sources:
        for path in paths:
            for k, text in enumerate(html_sections(path)):
                rel = path.relative_to(roots.get(source, path.parents[0])).as_posix()
                docs.append({"source": source, "origin": f"{package}:{rel}#{k}", "url": f"{base}{rel}#s{k}",
                             "text": text})
    for name in ("chinese", "tang300", "song100"):
        raw = (FORTUNES / name).read_text(encoding="utf-8", errors="replace")
        for k, item in enumerate(raw.split("\n%\n")):
            text = squeeze(ANSI_RE.sub("", item))
            docs.append({"source": "fortune", "origin": f"fortunes-zh:{name}#{k}",
                         "url": f"https://fortunes.example.cn/{name}/{k}", "text": text})
    return docs


def foreign_sections() -> dict[str, list[str]]:
    """English and Japanese Debian Reference sections, for the wrong_language defect."""
    out = {}
    for lang in ("en", "ja"):
        texts = [t for p in sorted(DEBREF.glob(f"*.{lang}.html")) for t in html_sections(p) if len(t) >= 600]
        out[lang] = texts
    return out


def heldout_descriptions() -> list[dict]:
    """Debian's Simplified Chinese package descriptions (short + long), unique, in package order."""
    files = sorted(glob.glob(TRANSLATION))
    if not files:
        raise SystemExit("Translation-zh_CN is missing: run apt-get update -o Acquire::Languages=zh_CN")
    raw = subprocess.run(["lz4cat", files[0]], capture_output=True, check=True).stdout.decode("utf-8") \
        if files[0].endswith(".lz4") else Path(files[0]).read_text(encoding="utf-8")
    out, seen = [], set()
    for record in raw.split("\n\n"):
        fields = dict(re.findall(r"^(Package|Description-md5): (.*)$", record, re.M))
        m = re.search(r"^Description-zh_CN: (.*(?:\n .*)*)", record, re.M)
        if not m or fields.get("Description-md5") in seen:
            continue
        seen.add(fields.get("Description-md5"))
        lines = m.group(1).split("\n")
        body = "\n".join("" if ln.strip() == "." else ln[1:] for ln in lines[1:])
        out.append({"id": f"desc-{fields['Package']}", "text": squeeze(lines[0] + "\n\n" + body)})
    return out


# --------------------------------------------------------------------------------- decontamination


TOKEN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def char_ngrams(text: str, n: int = CONTAMINATION_NGRAM) -> set[tuple[str, ...]]:
    """N-grams of tokens as the dedup steps count them: each Han character, or a run of other word characters."""
    toks = TOKEN_RE.findall(unicodedata.normalize("NFKC", text).lower())
    return {tuple(toks[i: i + n]) for i in range(0, max(0, len(toks) - n + 1))}


# -------------------------------------------------------------------------------------- defects

FAKE_SITES = [f"{w}.example.cn" for w in (
    "kaiyuan", "linuxba", "jishu", "yunwei", "bianma", "daima", "xitong", "ruanjian", "zhishi", "xuexi",
    "jiaocheng", "biji", "wenku", "ziyuan", "shequ", "luntan", "boke", "zixun", "pindao", "dianzi",
    "wangzhan", "shuju", "fuwu", "gongju", "anzhuang", "peizhi", "shouce", "wendang", "zhuye", "daohang",
    "xinwen", "redian", "tuijian", "jingxuan", "remen", "zuixin", "quanwang", "zhongwen", "jiqiao", "wenda")]
NAV_WORDS = ["首页", "新闻", "教程", "下载", "论坛", "博客", "关于我们", "联系我们", "帮助中心", "登录", "注册",
             "文档", "社区", "产品", "服务", "招聘", "合作", "专题", "排行榜", "问答"]
BOILER_LINES = ["跳到主要内容", "本网站使用 Cookie 来改善您的浏览体验。继续浏览即表示您同意我们使用 Cookie。",
                "接受全部 Cookie | 管理偏好设置", "分享到：微信 微博 QQ空间 豆瓣", "相关文章", "猜你喜欢",
                "订阅我们的新闻通讯，获取最新资讯！", "扫码关注公众号", "上一篇 | 下一篇", "返回顶部",
                "免责声明：本站内容来自网络，如有侵权请联系删除。", "热门标签", "阅读全文", "点赞 收藏 评论 转发"]
SPAM_LINES = ["点击这里免费下载最新版本，不要错过！", "限时优惠，立即抢购，全场五折起！", "加微信领取免费教程资料包",
              "最好的Linux教程就在这里，马上收藏本站！", "网站建设 SEO优化 关键词排名 快速收录"]
SPAM_WORDS = ["免费下载", "破解版", "最新版", "官方正版", "高清", "在线观看", "优惠券", "代理", "刷单", "赚钱"]
SEO_PHRASES = ["Linux教程", "免费下载", "服务器配置", "网站优化", "关键词排名", "百度收录", "软件破解", "系统安装",
               "命令大全", "运维工具", "编程入门", "数据库优化", "云服务器", "虚拟主机", "域名注册", "网络安全",
               "黑客技术", "视频教程", "电子书下载", "源码下载", "在线工具", "手机软件", "游戏攻略", "兼职赚钱"]
SURNAMES = ["zhang", "wang", "li", "liu", "chen", "yang", "zhao", "huang", "zhou", "wu"]
MAIL_HOSTS = ["example.com", "example.cn", "mail.example.org", "example.net"]
PII_TEMPLATES = ["如有问题请联系{who}，邮箱：{email}。", "联系电话：{phone}（工作日 9:00-18:00）。",
                 "服务器地址为{ip}，请勿公开。", "付款请使用银行卡{card}。", "我的手机号是{phone}，邮箱{email}，欢迎交流。",
                 "测试机的 IP 是 {ip}，登录后修改密码。", "客户 {who} 的卡号 {card} 已登记。"]
COMMON_HAN = [chr(c) for c in range(0x4E00, 0x9FA6)]


def luhn_complete(digits: str) -> str:
    total = 0
    for i, d in enumerate(reversed(digits + "0")):
        n = int(d)
        if i % 2 == 1:
            n = n * 2 - 9 if n * 2 > 9 else n * 2
        total += n
    return digits + str((10 - total % 10) % 10)


def fake_pii(rng: random.Random) -> dict[str, str]:
    phone = "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))
    if rng.random() < 0.5:
        phone = f"{phone[:3]} {phone[3:7]} {phone[7:]}" if rng.random() < 0.5 else f"{phone[:3]}-{phone[3:7]}-{phone[7:]}"
    user = rng.choice(SURNAMES) + rng.choice(["", ".", "_"]) + rng.choice(SURNAMES) + str(rng.randint(1, 999))
    return {"email": f"{user}@{rng.choice(MAIL_HOSTS)}", "phone": phone,
            "ip": f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            "card": luhn_complete("62" + "".join(rng.choice("0123456789") for _ in range(13))),
            "who": rng.choice(["张先生", "王女士", "李工", "刘经理", "陈老师"])}


def paragraphs(text: str) -> list[str]:
    return [p for p in text.split("\n\n") if p.strip()]


def insert_paragraphs(text: str, extra: list[str], rng: random.Random) -> str:
    paras = paragraphs(text)
    for e in extra:
        paras.insert(rng.randint(0, len(paras)), e)
    return "\n\n".join(paras)


def inject(defect: str, doc: dict, rng: random.Random, foreign: dict[str, list[str]], meta: dict) -> tuple[str, str]:
    """Apply one defect to ``doc['text']``; returns (new text, new url)."""
    text, url = doc["text"], doc["url"]
    if defect == "boilerplate":
        site = rng.randrange(len(FAKE_SITES))
        srng = random.Random(site)  # each fake site reuses its own template
        nav = " | ".join(srng.sample(NAV_WORDS, 7))
        head = [srng.choice(BOILER_LINES[:3]), nav, "当前位置：首页 > " + srng.choice(NAV_WORDS) + " > 正文"]
        foot = srng.sample(BOILER_LINES[3:], 4) + [f"版权所有 © 2015-2024 {FAKE_SITES[site]} 保留所有权利 "
                                                   f"京ICP备{srng.randint(10000000, 99999999)}号"]
        meta["boilerplate"] = {"site": FAKE_SITES[site]}
        return "\n".join(head) + "\n\n" + text + "\n\n" + "\n".join(foot), f"https://{FAKE_SITES[site]}/a/{rng.randint(1000, 99999)}.html"
    if defect == "keyword_spam":
        variant = rng.choice(["repeated_line", "repeated_word", "tag_stuffing", "repeated_phrase"])
        meta["keyword_spam"] = {"variant": variant}
        if variant == "repeated_line":
            line = rng.choice(SPAM_LINES)
            return text + "\n\n" + "\n".join([line] * rng.randint(12, 40)), url
        if variant == "repeated_word":
            word = rng.choice(SPAM_WORDS)
            return text + "\n\n" + rng.choice(["", " ", "，"]).join([word] * rng.randint(40, 150)), url
        if variant == "tag_stuffing":
            tags = [rng.choice(SEO_PHRASES) + rng.choice(["", "2024", "大全", "教程", "下载"]) for _ in range(rng.randint(40, 120))]
            return text + "\n\n标签：" + "、".join(tags), url
        phrase = rng.choice(SPAM_LINES)
        paras = paragraphs(text)
        n = rng.randint(15, 40)
        out = [p + phrase for p in paras] + [phrase] * max(0, n - len(paras))
        return "\n\n".join(out), url
    if defect == "too_short":
        return text[: rng.randint(5, 40)].strip(), url
    if defect == "symbol_junk":
        variant = rng.choice(["base64", "numeric_table", "url_list", "hexdump", "symbols"])
        meta["symbol_junk"] = {"variant": variant}
        keep = text[: max(20, len(text) // 8)]
        size = max(2000, 3 * len(keep))
        if variant == "base64":
            junk = base64.encodebytes(rng.randbytes(size * 3 // 4)).decode()
        elif variant == "numeric_table":
            junk = "\n".join(" ".join(f"{rng.uniform(-1000, 1000):10.3f}" for _ in range(6)) for _ in range(size // 66))
        elif variant == "url_list":
            junk = "\n".join(f"https://{rng.choice(FAKE_SITES)}/{rng.randint(1, 10**6)}/{rng.randbytes(4).hex()}.html"
                             for _ in range(rng.randint(40, 160)))
        elif variant == "hexdump":
            junk = "\n".join(f"{i * 16:08x}  " + " ".join(f"{b:02x}" for b in rng.randbytes(16)) for i in range(size // 58))
        else:
            junk = "\n".join("".join(rng.choice("#*=~-+|/\\<>^%$@!※★☆■□●○◆◇→←↑↓") for _ in range(rng.randint(20, 70)))
                             for _ in range(size // 45))
        return keep + "\n\n" + junk, url
    if defect == "mojibake":
        codec = rng.choice(["cp1252", "latin-1", "gbk"])
        scope = rng.choice(["full", "full", "half"])
        meta["mojibake"] = {"codec": codec, "scope": scope}

        def garble(s: str) -> str:
            data = s.encode("utf-8")
            if codec == "cp1252":
                return "".join(bytes([b]).decode("cp1252", errors="strict") if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
                               else bytes([b]).decode("latin-1") for b in data)
            return data.decode(codec, errors="replace")

        if scope == "full":
            return garble(text), url
        paras = paragraphs(text)
        half = len(paras) // 2
        return "\n\n".join(paras[:half] + [garble(p) for p in paras[half:]]), url
    if defect == "pii":
        values = fake_pii(rng)
        sentences = [t.format(**values) for t in rng.sample(PII_TEMPLATES, rng.randint(2, 4))]
        found = [{"type": k, "value": v} for k, v in values.items() if k != "who" and any(v in s for s in sentences)]
        meta["pii"] = {"pii": found}
        return insert_paragraphs(text, sentences, rng), url
    if defect == "wrong_language":
        lang = rng.choice(["en", "en", "ja"])
        mode = rng.choice(["full", "partial"])
        other = rng.choice(foreign[lang])
        meta["wrong_language"] = {"lang": lang, "mode": mode}
        if mode == "full":
            return other, url
        paras = paragraphs(text)
        keep = "\n\n".join(paras[: max(1, len(paras) // 3)])[:1500]
        return keep + "\n\n" + other[: max(len(keep) * 2, 600)], url
    if defect == "gibberish":
        variant = rng.choice(["random_chars", "word_salad", "keyboard_mash", "fake_text"])
        meta["gibberish"] = {"variant": variant}
        size = max(400, len(text))
        if variant == "random_chars":
            junk = "".join(rng.choice(COMMON_HAN) if rng.random() > 0.08 else "，" for _ in range(size))
        elif variant == "word_salad":
            pieces = [text[i: i + rng.randint(1, 3)] for i in range(0, len(text), 2)]
            pieces = [p for p in pieces if cjk_count(p)] or ["的"]
            junk = "".join(rng.choice(pieces) for _ in range(size // 2))
        elif variant == "keyboard_mash":
            junk = " ".join("".join(rng.choice("asdfghjklqwertyuiopzxcvbnm") for _ in range(rng.randint(3, 12)))
                            for _ in range(size // 6))
        else:
            chars = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经"
            junk = "。".join("".join(rng.choice(chars) for _ in range(rng.randint(8, 25))) for _ in range(size // 16))
        keep = text[: len(text) // 5] if rng.random() < 0.5 else ""
        return (keep + "\n\n" + junk).strip(), url
    raise AssertionError(defect)


def near_duplicate(text: str, rng: random.Random) -> tuple[str, float]:
    """1-5% of the characters substituted, deleted, inserted or swapped, plus a new header and footer line."""
    rate = rng.uniform(0.01, 0.05)
    chars = list(text)
    edits = max(1, int(rate * len(chars)))
    for _ in range(edits):
        i = rng.randrange(len(chars))
        op = rng.random()
        if op < 0.4:
            chars[i] = rng.choice(chars)
        elif op < 0.6:
            chars[i] = ""
        elif op < 0.8:
            chars[i] = chars[i] + rng.choice(chars)
        elif i + 1 < len(chars):
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
    header = rng.choice(["转载自网络", "本文来源：互联网", "原文链接已失效", "整理：小编"])
    footer = rng.choice(["（完）", "如需转载请注明出处。", "更多内容请关注本站。"])
    return header + "\n" + "".join(chars) + "\n" + footer, rate


DEFECTS = ["boilerplate", "keyword_spam", "too_short", "symbol_junk", "mojibake", "pii", "wrong_language", "gibberish"]


def build_corpus(base: list[dict], task: dict[str, list[dict]], foreign: dict[str, list[str]],
                 seed: int) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    clean_ids: list[int] = []
    docs: list[dict] = []
    labels: list[dict] = []

    def add(text: str, url: str, source: str, defects: list[str], meta: dict, dup_of: str | None = None) -> str:
        doc_id = f"zh-{len(docs):06d}"
        docs.append({"id": doc_id, "url": url, "text": text, "source": source})
        labels.append({"id": doc_id, "defects": defects, "dup_of": dup_of, "meta": meta})
        return doc_id

    for doc in base:
        meta = {"origin": doc["origin"]}
        defects: list[str] = []
        text, url = doc["text"], doc["url"]
        if rng.random() < 0.35:
            chosen = [rng.choice(DEFECTS)]
            if rng.random() < 0.12:
                second = rng.choice(DEFECTS)
                if second not in chosen and "wrong_language" not in chosen + [second] and "too_short" not in chosen:
                    chosen.append(second)
            for d in chosen:
                text, url = inject(d, {"text": text, "url": url}, rng, foreign, meta)
            defects = chosen
        i = add(text, url, doc["source"], defects, meta)
        if not defects:
            clean_ids.append(len(docs) - 1)
        del i
    # Duplicates of clean documents: byte-identical copies and lightly edited ones, on new URLs.
    originals = list(clean_ids)
    for k in rng.sample(originals, k=len(originals) * 7 // 100):
        d = docs[k]
        add(d["text"], f"https://mirror{rng.randint(1, 9)}.example.cn/{d['id']}?utm_source=feed", d["source"],
            ["exact_duplicate"], {"origin": labels[k]["meta"]["origin"]}, dup_of=d["id"])
    for k in rng.sample(originals, k=len(originals) * 5 // 100):
        d = docs[k]
        text, rate = near_duplicate(d["text"], rng)
        add(text, f"https://{rng.choice(FAKE_SITES)}/copy/{rng.randint(1, 10**6)}.html", d["source"],
            ["near_duplicate"], {"origin": labels[k]["meta"]["origin"], "near_duplicate": {"edit_rate": round(rate, 4)}},
            dup_of=d["id"])
    # Contamination: texts of the task's dev and test splits, standalone or embedded in a clean document.
    planted = [("dev", r) for r in task["dev"]] + [("test", r) for r in task["test"]]
    for split, row in rng.sample(planted, k=len(planted) // 3):
        if rng.random() < 0.5:
            text, mode = rng.choice(["每日一读\n\n", "手册摘录\n\n", ""]) + row["text"], "standalone"
            source, url = "contamination", f"https://{rng.choice(FAKE_SITES)}/daily/{rng.randint(1, 10**6)}"
        else:
            host = docs[rng.choice(originals)]
            text, mode = insert_paragraphs(host["text"], [row["text"]], rng), "embedded"
            source, url = host["source"], host["url"] + "?ref=embed"
        add(text, url, source, ["contamination"], {"contamination": {"text": row["text"], "split": split, "mode": mode}})
    # Shuffle so duplicates are not all at the end; the id stays with its document.
    order = list(range(len(docs)))
    random.Random(seed + 1).shuffle(order)
    return [docs[i] for i in order], [labels[i] for i in order]


# ------------------------------------------------------------------------------------------ output


def write_jsonl_gz(path: Path, rows: list[dict]) -> None:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as f:
        for row in rows:
            f.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
    path.write_bytes(buf.getvalue())


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--size", choices=("small", "large"), default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extra-sources", action=argparse.BooleanOptionalAction, default=None,
                        help="read lo-help and handbook (default: for --size large only; capped at 0 in small)")
    args = parser.parse_args()
    extra = args.size == "large" if args.extra_sources is None else args.extra_sources
    os.environ["LC_ALL"] = "C.UTF-8"

    task, task_pages, task_texts = build_task(args.seed)
    base = base_documents(task_pages, extra)
    base = [d for d in base if is_chinese(d["text"])]
    # Decontaminate the base documents against every task text (train included) before anything else.
    grams: set[str] = set()
    for t in task_texts:
        grams |= char_ngrams(t)
    before = len(base)
    base = [d for d in base if not (char_ngrams(d["text"]) & grams)]
    dropped = before - len(base)
    # Exact duplicates among the base documents stay (they are natural), but only once per source file.
    if args.size == "small":
        picked = []
        for source, cap in SMALL_CAPS.items():
            items = [d for d in base if d["source"] == source]
            if cap is not None and len(items) > cap:
                keep = set(random.Random(f"{args.seed}:{source}").sample(range(len(items)), cap))
                items = [d for k, d in enumerate(items) if k in keep]
            picked += items
        base = picked
    foreign = foreign_sections()
    docs, labels = build_corpus(base, task, foreign, args.seed)

    out = args.out
    (out / "task").mkdir(parents=True, exist_ok=True)
    write_jsonl_gz(out / "corpus.jsonl.gz", docs)
    write_jsonl_gz(out / "corpus.labels.jsonl.gz", labels)
    for split, rows in task.items():
        write_jsonl(out / "task" / f"{split}.jsonl", [{"text": r["text"], "label": r["label"]} for r in rows])
    write_jsonl(out / "task" / "pages.jsonl", [{"split": s, "page": r["page"], "label": r["label"]}
                                               for s, rows in task.items() for r in rows])
    write_jsonl_gz(out / "heldout.jsonl.gz", heldout_descriptions())
    counts: dict[str, int] = {}
    for d in base:
        counts[d["origin"].split(":")[0]] = counts.get(d["origin"].split(":")[0], 0) + 1
    rows = ["package\tversion\tbase_documents"] + [f"{p}\t{package_version(p)}\t{counts.get(p, 0)}"
                                              for p in PACKAGES + (EXTRA_PACKAGES if extra else [])]
    (out / "provenance.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")

    by_defect: dict[str, int] = {}
    for lab in labels:
        for d in lab["defects"] or ["clean"]:
            by_defect[d] = by_defect.get(d, 0) + 1
    by_source: dict[str, int] = {}
    for d in docs:
        by_source[d["source"]] = by_source.get(d["source"], 0) + 1
    print(json.dumps({"documents": len(docs), "base_documents": len(base), "dropped_for_task_overlap": dropped,
                      "by_source": by_source, "by_defect": by_defect,
                      "task": {k: len(v) for k, v in task.items()}}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
