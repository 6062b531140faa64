"""Write the tiny test fixtures in data/fixtures/ in the exact formats of the public files.

Run from the repository root: ``python data/make_fixtures.py``. The output is deterministic
(fixed seeds, fixed zip timestamps, fixed workbook properties), so re-running it changes no
byte and ``git status`` stays clean. The data are invented (no GroupLens or UCI rows are
copied); only the file layouts follow the originals:

- ``ml-100k/`` and ``ml-100k.zip``: ``u.data`` (tab-separated user, item, rating, timestamp),
  ``u.item`` (``|``-separated, latin-1, 5 fields + 19 genre flags), ``u.user``, ``u.genre``,
  ``u.occupation``, ``u.info`` and the official splits ``u1..u5.base/test``, ``ua/ub.base/test``;
  the zip holds them under the inner folder ``ml-100k/`` like the GroupLens archive.
- ``ml-1m/`` and ``ml-1m.zip``: ``ratings.dat``, ``movies.dat``, ``users.dat`` with ``::``
  separators, latin-1, one movie without ratings (as in the real ML-1M).
- ``online_retail_sample.xlsx``: one sheet "Online Retail" with the 8 UCI columns and rows that
  hit every cleaning rule of :func:`recbook.datasets.load_online_retail`.
"""

from __future__ import annotations

import io
import random
import re
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import openpyxl

OUT = Path(__file__).resolve().parent / "fixtures"
ZIP_TIME = (1998, 4, 22, 0, 0, 0)  # fixed member timestamps -> byte-identical zips
GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
OCCUPATIONS_100K = ["administrator", "educator", "engineer", "other", "programmer", "student"]


def _write(path: Path, text: str, encoding: str = "latin-1") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))


def _zip_folder(folder: Path, zip_path: Path) -> None:
    """Zip ``folder`` as ``<folder.name>/...`` with fixed timestamps and sorted members."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo(folder.name + "/", ZIP_TIME), b"")
        for f in sorted(folder.iterdir()):
            info = zipfile.ZipInfo(f"{folder.name}/{f.name}", ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, f.read_bytes())


def _ratings(rng: random.Random, n_users: int, items: list[int], per_user: int, t0: int):
    rows = []
    for u in range(1, n_users + 1):
        for i in sorted(rng.sample(items, per_user)):
            rows.append((u, i, rng.randint(1, 5), t0 + rng.randint(0, 5_000_000)))
    return rows


def make_ml100k() -> None:
    rng = random.Random(100)
    root = OUT / "ml-100k"
    n_users, n_items = 8, 10
    ratings = _ratings(rng, n_users, list(range(1, n_items + 1)), 6, 874_724_710)
    rng.shuffle(ratings)  # u.data is "randomly ordered" in the original
    line = "{}\t{}\t{}\t{}\n"
    _write(root / "u.data", "".join(line.format(*r) for r in ratings))

    titles = [
        "Toy Robots (1995)", "Golden Harbour (1995)", "Four Rooms Later (1995)",
        "Misérables, Les (1995)", "Night Train to Köln (1996)", "The Quiet Field (1994)",
        "Space Cadets (1997)", "Crime Wave (1996)", "Old Western (1993)", "unknown",
    ]  # fmt: skip
    item_lines = []
    for i, title in enumerate(titles, start=1):
        if title == "unknown":  # like item 267 of the real file: no date, no URL
            date, url, flags = "", "", [1] + [0] * 18
        else:
            day = datetime(1993, 1, 1) + timedelta(days=97 * i)
            date = f"{day.day:02d}-{MONTHS[day.month - 1]}-{day.year}"  # locale-free %d-%b-%Y
            url = "http://us.imdb.com/M/title-exact?" + title.replace(" ", "%20")
            flags = [0] * 19
            for g in rng.sample(range(1, 19), rng.randint(1, 3)):
                flags[g] = 1
        fields = [str(i), title, date, "", url] + [str(f) for f in flags]
        item_lines.append("|".join(fields) + "\n")
    _write(root / "u.item", "".join(item_lines))

    user_lines = []
    for u in range(1, n_users + 1):
        gender = "MF"[u % 2]
        occ = OCCUPATIONS_100K[u % len(OCCUPATIONS_100K)]
        user_lines.append(f"{u}|{18 + 3 * u}|{gender}|{occ}|{55000 + 37 * u:05d}\n")
    _write(root / "u.user", "".join(user_lines))
    _write(root / "u.genre", "".join(f"{g}|{k}\n" for k, g in enumerate(GENRES)) + "\n")
    _write(root / "u.occupation", "".join(o + "\n" for o in OCCUPATIONS_100K))
    _write(root / "u.info", f"{n_users} users\n{n_items} items\n{len(ratings)} ratings\n")

    def dump(name: str, rows: list) -> None:
        _write(root / name, "".join(line.format(*r) for r in sorted(rows)))

    # u1..u5: five disjoint test folds (20 % each), base = the other 80 %.
    order = list(ratings)
    rng.shuffle(order)
    folds = [order[k::5] for k in range(5)]
    for k, fold in enumerate(folds, start=1):
        dump(f"u{k}.test", fold)
        dump(f"u{k}.base", [r for r in ratings if r not in fold])
    # ua/ub: a fixed number of ratings per user held out (10 in the original, 2 here);
    # the two test sets are disjoint.
    ua_test, ub_test = [], []
    for u in range(1, n_users + 1):
        mine = sorted(r for r in ratings if r[0] == u)
        picked = rng.sample(mine, 4)
        ua_test += picked[:2]
        ub_test += picked[2:]
    for name, test in (("ua", ua_test), ("ub", ub_test)):
        dump(f"{name}.test", test)
        dump(f"{name}.base", [r for r in ratings if r not in test])
    _zip_folder(root, OUT / "ml-100k.zip")


def make_ml1m() -> None:
    rng = random.Random(1000)
    root = OUT / "ml-1m"
    movies = [
        (1, "Toy Robots (1995)", "Animation|Children's|Comedy"),
        (2, "Jumping Beans (1995)", "Adventure|Children's|Fantasy"),
        (5, "Misérables, Les (1995)", "Drama|Musical"),
        (7, "Heat Wave (1995)", "Action|Crime|Thriller"),
        (11, "Sabrina's Garden (1995)", "Comedy|Romance"),
        (13, "Café au lait (1993)", "Comedy"),
        (17, "Sense and Nonsense (1995)", "Drama|Romance"),
        (21, "Never Rated (1996)", "Documentary"),  # in movies.dat, no rating (like ML-1M)
    ]
    rated = [m for m, _, _ in movies[:-1]]
    ratings = _ratings(rng, 6, rated, 5, 978_300_000)
    ratings.sort(key=lambda r: (r[0], r[3]))  # ratings.dat is grouped by user
    _write(root / "ratings.dat", "".join("{}::{}::{}::{}\n".format(*r) for r in ratings))
    _write(root / "movies.dat", "".join(f"{m}::{t}::{g}\n" for m, t, g in movies))
    ages = [1, 18, 25, 35, 45, 50, 56]
    users = [
        f"{u}::{'FM'[u % 2]}::{ages[u % 7]}::{(3 * u) % 21}::{48000 + 67 * u}\n"
        for u in range(1, 7)
    ]
    users[2] = users[2].rstrip("\n") + "-2210\n"  # a ZIP+4 code, as in the real users.dat
    _write(root / "users.dat", "".join(users))
    _zip_folder(root, OUT / "ml-1m.zip")


RETAIL_COLUMNS = [
    "InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
    "CustomerID", "Country",
]  # fmt: skip


def retail_rows() -> list[list]:
    """Invented rows in the UCI layout. Comments name the cleaning rule a row hits first."""
    t = datetime(2010, 12, 1, 8, 26)
    d = timedelta(hours=5)
    heart, lantern, mug = "WHITE HEART T-LIGHT HOLDER", "WHITE METAL LANTERN", "RED SPOT MUG"
    return [
        # kept purchases (StockCode as text and as a number, like the original sheet)
        [536365, "85123A", heart, 6, t, 2.55, 17850.0, "United Kingdom"],
        [536365, 71053, lantern, 6, t, 3.39, 17850.0, "United Kingdom"],
        [536366, 22633, "HAND WARMER UNION JACK", 6, t + d, 1.85, 17850.0, "United Kingdom"],
        [536367, 84879, "ASSORTED COLOUR BIRD ORNAMENT", 32, t + 2 * d, 1.69, 13047.0,
         "United Kingdom"],
        [536367, "85123A", heart, 12, t + 2 * d, 2.55, 13047.0, "United Kingdom"],
        [536368, 22960, "JAM MAKING SET WITH JARS", 6, t + 3 * d, 4.25, 12583.0, "France"],
        [536368, 71053, lantern, 4, t + 3 * d, 3.39, 12583.0, "France"],
        [536369, 21756, "BATH BUILDING BLOCK WORD", 3, t + 4 * d, 5.95, 12583.0, "France"],
        [536370, "84406B", "CREAM CUPID HEARTS COAT HANGER", 8, t + 5 * d, 2.75, 12431.0,
         "Australia"],
        [536370, 22728, mug, 24, t + 5 * d, 3.75, 12431.0, "Australia"],
        [536370, 22728, mug, 24, t + 5 * d, 3.75, 12431.0, "Australia"],  # exact duplicate
        [536371, 22728, None, 2, t + 6 * d, 3.95, 12662.0, "Germany"],  # no description
        [536372, "85123a", heart, 1, t + 7 * d, 2.95, 12662.0, "Germany"],  # lower-case code
        [536373, 21756, "BATH BUILDING BLOCK WORD", 1, t + 8 * d, 5.95, 12431.0,
         "Australia"],
        [536374, 22960, "JAM MAKING SET WITH JARS", 2, t + 9 * d, 4.25, 12431.0,
         "Netherlands"],  # a customer seen in two countries
        # cancellations: InvoiceNo starts with "C"
        ["C536379", "D", "Discount", -1, t + 2 * d, 27.5, 14527.0, "United Kingdom"],
        ["C536383", "35004C", "SET OF 3 COLOURED  FLYING DUCKS", -1, t + 3 * d, 4.65,
         15311.0, "United Kingdom"],
        # missing CustomerID
        [536414, 22139, None, 56, t + 4 * d, 0.0, None, "United Kingdom"],
        [536544, 21773, "DECORATIVE ROSE BATHROOM BOTTLE", 1, t + 6 * d, 2.51, None,
         "United Kingdom"],
        ["A563185", "B", "Adjust bad debt", 1, t + 7 * d, 11062.06, None, "United Kingdom"],
        # non-positive Quantity without a "C" invoice
        [536589, 21777, "damaged", -10, t + 8 * d, 0.0, 16422.0, "United Kingdom"],
        [536590, 22423, "REGENCY CAKESTAND 3 TIER", 0, t + 8 * d, 12.75, 16422.0,
         "United Kingdom"],
        # non-product stock codes
        [536370, "POST", "POSTAGE", 3, t + 5 * d, 18.0, 12431.0, "Australia"],
        [536592, "DOT", "DOTCOM POSTAGE", 1, t + 9 * d, 569.77, 14096.0, "United Kingdom"],
        [536593, "M", "Manual", 1, t + 9 * d, 2.55, 12583.0, "France"],
        [536594, "C2", "CARRIAGE", 1, t + 9 * d, 50.0, 14911.0, "EIRE"],
        [536595, "BANK CHARGES", "Bank Charges", 1, t + 10 * d, 15.0, 13405.0,
         "United Kingdom"],
        [536596, "AMAZONFEE", "AMAZON FEE", 1, t + 10 * d, 13541.33, 12346.0,
         "United Kingdom"],
        [536597, "gift_0001_20", "Dotcomgiftshop Gift Voucher £20.00", 1, t + 10 * d, 17.02,
         14096.0, "United Kingdom"],
        [536598, "CRUK", "CRUK Commission", 1, t + 11 * d, 1.6, 14096.0, "United Kingdom"],
        [536599, "PADS", "PADS TO MATCH ALL CUSHIONS", 1, t + 11 * d, 0.001, 13952.0,
         "United Kingdom"],
        [536600, "S", "SAMPLES", 1, t + 11 * d, 33.05, 12346.0, "United Kingdom"],
        # non-positive UnitPrice on an otherwise valid product row
        [536601, 22841, "ROUND CAKE TIN VINTAGE GREEN", 1, t + 12 * d, 0.0, 12647.0,
         "Germany"],
        # a required field left empty (no UnitPrice)
        [536602, 22842, "ROUND CAKE TIN VINTAGE RED", 1, t + 12 * d, None, 12647.0, "Germany"],
    ]  # fmt: skip


def _freeze_xlsx(raw: bytes) -> bytes:
    """Rewrite an openpyxl .xlsx with fixed member times and fixed document dates."""
    src = zipfile.ZipFile(io.BytesIO(raw))
    out = io.BytesIO()
    stamp = "2011-12-09T12:50:00Z"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "docProps/core.xml":
                text = data.decode("utf-8")
                text = re.sub(r"(<dcterms:created[^>]*>)[^<]*", rf"\g<1>{stamp}", text)
                text = re.sub(r"(<dcterms:modified[^>]*>)[^<]*", rf"\g<1>{stamp}", text)
                data = text.encode("utf-8")
            info = zipfile.ZipInfo(name, (2011, 12, 9, 12, 50, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(info, data)
    return out.getvalue()


def make_online_retail() -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Online Retail"
    ws.append(RETAIL_COLUMNS)
    for row in retail_rows():
        ws.append(row)
    for cell in ws["E"][1:]:
        cell.number_format = "m/d/yyyy h:mm"
    buf = io.BytesIO()
    wb.save(buf)
    (OUT / "online_retail_sample.xlsx").write_bytes(_freeze_xlsx(buf.getvalue()))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    make_ml100k()
    make_ml1m()
    make_online_retail()
    for f in sorted(OUT.rglob("*")):
        if f.is_file():
            print(f"{f.relative_to(OUT.parent)}  {f.stat().st_size} B")


if __name__ == "__main__":
    main()
