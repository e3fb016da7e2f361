"""How the heuristic engine scores one ordinary business letter written in the languages of a
company's offices, as plain text and as a mail program's plain + HTML alternative.

    .venv/bin/python -m bench.business_letters          # ~2 s

The corpus is English mail of 2002 (docs/antispam.md, "Detection quality"); this sends
nothing: it builds the same short letter (a meeting moved, figures to prepare) written by a
person in each language (tester i18n19, session 19), signed from that office's own domain
with a sender-side Received line, in the language's usual mail charsets and UTF-8, and scores
each with the shipped definitions, as the core would for a client at a documentation address.
The English letter, signed from the São Paulo office, shows what the language alone adds.
It prints one row per language and charset with both scores, and the five features weighing
most towards spam of any letter at 70 or more.
"""

from __future__ import annotations

import email.utils
import html
import sys
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.scan.antispam.engine import HeuristicEngine                # noqa: E402
from core.scan.antispam.training import view_of                     # noqa: E402

SENT_AT = 1_795_000_000             # a fixed Date and Received time: the same mail every run
SHOW_EVIDENCE_AT = 70

LETTERS = {  # language: (Subject, body), written for this bench
"ru": ("Встреча по бюджету на следующей неделе",
"""Добрый день, Ирина!

Спасибо за вчерашний звонок. Как договорились, переносим встречу по бюджету на вторник, 14:00, переговорная на третьем этаже.
Прошу подготовить сводную таблицу расходов отдела за третий квартал и прогноз на следующий год. Если будут вопросы по командировкам, Сергей Петрович готов ответить до пятницы.

Также напоминаю, что договор с поставщиком из Казани нужно подписать до конца месяца. Юристы уже посмотрели текст, замечаний нет.

С уважением,
Алексей Смирнов
Финансовый отдел, московский офис
тел. +7 495 123-45-67"""),
"el": ("Συνάντηση για την προσφορά του πελάτη",
"""Καλημέρα Γιώργο,

Σε ευχαριστώ για το χθεσινό τηλεφώνημα. Όπως συμφωνήσαμε, η συνάντηση με τον πελάτη από τη Θεσσαλονίκη μεταφέρεται την Πέμπτη στις 11:00 στο γραφείο της Αθήνας.
Θα σου στείλω μέχρι την Τετάρτη το τελικό κείμενο της προσφοράς και τον πίνακα με τις τιμές. Αν χρειάζεσαι κάτι άλλο, ενημέρωσέ με.

Με εκτίμηση,
Μαρία Παπαδοπούλου
Τμήμα Πωλήσεων, γραφείο Αθήνας"""),
"he": ("פגישת צוות ביום ראשון",
"""שלום דנה,

תודה על השיחה אתמול. כפי שסיכמנו, פגישת הצוות תתקיים ביום ראשון בשעה 10:00 בחדר הישיבות בקומה החמישית.
אנא הביאי את הדוח הרבעוני ואת רשימת הלקוחות החדשים. אם יש שאלות לגבי התקציב, אבי זמין עד יום חמישי.

בברכה,
יוסי כהן
מחלקת כספים, משרד תל אביב"""),
"ja": ("来週の打ち合わせについて",
"""山田様

いつもお世話になっております。東京支社の佐藤です。
先日はお忙しいところお時間をいただき、ありがとうございました。
来週の打ち合わせですが、火曜日の午後二時から本社三階の会議室で行いたいと思います。
当日は第三四半期の売上報告と来年度の予算案について説明させていただく予定です。
ご都合が悪い場合は、お手数ですがご連絡いただけますと幸いです。

今後ともよろしくお願いいたします。

佐藤 花子
営業部 東京支社"""),
"zh": ("关于下周会议的安排",
"""王经理，您好！

感谢您昨天的来电。按照我们的约定，下周二下午两点在上海办公室五楼会议室召开季度总结会议。
请您提前准备第三季度的销售报告和明年的预算计划。如果对差旅报销有任何问题，李主任周五之前都可以解答。

另外，与杭州供应商的合同需要在月底之前签署，法务部门已经审核过，没有意见。

此致
敬礼
张伟
财务部 上海办公室"""),
"ko": ("다음 주 회의 일정 안내",
"""김 부장님께,

어제 전화 주셔서 감사합니다. 말씀드린 대로 다음 주 화요일 오후 2시에 서울 사무실 5층 회의실에서 분기 회의를 진행하겠습니다.
3분기 매출 보고서와 내년 예산안을 미리 준비해 주시면 감사하겠습니다. 출장비 정산 관련 문의는 금요일까지 이 과장에게 하시면 됩니다.

감사합니다.
박지훈 드림
재무팀, 서울 사무소"""),
"pt": ("Reunião de orçamento na próxima semana",
"""Olá, João!

Obrigado pela ligação de ontem. Como combinamos, a reunião de orçamento foi transferida para terça-feira, às 14h, na sala de reuniões do terceiro andar.
Por favor, prepare a planilha de despesas do departamento referente ao terceiro trimestre e a previsão para o próximo ano. Se houver dúvidas sobre as viagens, a Ana pode responder até sexta-feira.

Atenciosamente,
Carlos Souza
Departamento Financeiro, escritório de São Paulo"""),
}

LETTERS["en"] = ("Budget meeting next week", """Hi John,

Thanks for the call yesterday. As agreed, the budget meeting has been moved to Tuesday at 2 pm in the third-floor meeting room.
Please prepare the department's expense spreadsheet for the third quarter and the forecast for next year. If you have questions about travel, Anna can answer until Friday.

Best regards,
Carlos Souza
Finance Department, Sao Paulo office""")

SENDERS = {"en": ("Carlos Souza", "carlos@corp.com.br"),
           "pt": ("Carlos Souza", "carlos@corp.com.br"),
           "ru": ("Алексей Смирнов", "a.smirnov@corp-moscow.ru"),
           "el": ("Μαρία Παπαδοπούλου", "m.papadopoulou@corp.gr"),
           "he": ("יוסי כהן", "yossi@corp.co.il"),
           "ja": ("佐藤 花子", "h.sato@corp.co.jp"),
           "zh": ("张伟", "zhang.wei@corp.cn"),
           "ko": ("박지훈", "park@corp.co.kr")}
CHARSETS = {"en": ("us-ascii", "utf-8"), "pt": ("iso-8859-1", "utf-8"),
            "ru": ("koi8-r", "windows-1251", "utf-8"), "el": ("iso-8859-7", "utf-8"),
            "he": ("windows-1255", "iso-8859-8-i", "utf-8"),
            "ja": ("iso-2022-jp", "shift_jis", "utf-8"), "zh": ("gb2312", "utf-8"),
            "ko": ("euc-kr", "utf-8")}


def letter(language: str, charset: str, alternative: bool) -> bytes:
    subject, body = LETTERS[language]
    codec = {"iso-8859-8-i": "iso-8859-8"}.get(charset, charset)   # the label Python lacks
    text = MIMEText(body, "plain", codec)
    if alternative:
        lines = "<br>\n".join(html.escape(line) for line in body.split("\n"))
        markup = (f'<html><head><meta http-equiv=Content-Type content="text/html; '
                  f'charset={charset}"></head><body><div>{lines}</div></body></html>')
        msg = MIMEMultipart("alternative")
        msg.attach(text)
        msg.attach(MIMEText(markup, "html", codec))
    else:
        msg = text
    name, address = SENDERS[language]
    domain = address.split("@")[1]
    msg["Subject"] = Header(subject, codec)
    msg["From"] = f"{Header(name, codec).encode()} <{address}>"
    msg["To"] = "Colleague <colleague@example.com>"
    msg["Date"] = email.utils.formatdate(SENT_AT)
    msg["Message-ID"] = f"<{SENT_AT}.{language}.{charset}@{domain}>"
    raw = (f"Received: from pc17.{domain} (pc17.{domain} [10.1.2.3])\r\n\tby mail.{domain} "
           f"with ESMTPSA id 4F2A1; {email.utils.formatdate(SENT_AT)}\r\n").encode()
    raw += msg.as_bytes().replace(b"\n", b"\r\n")
    return raw.replace(b"iso-8859-8", b"iso-8859-8-i") if charset == "iso-8859-8-i" else raw


def main() -> int:
    engine = HeuristicEngine()
    print("| letter | charset | plain | plain + HTML |")
    print("|---|---|---|---|")
    notes = []
    for language, charsets in CHARSETS.items():
        for charset in charsets:
            scores = []
            for alternative in (False, True):
                envelope = {"sender": SENDERS[language][1],
                            "recipients": ["colleague@example.com"],
                            "client_ip": "203.0.113.5", "helo": "mail.example"}
                result = engine.score(view_of(letter(language, charset, alternative),
                                              envelope=envelope))
                scores.append(result.score)
                if result.score >= SHOW_EVIDENCE_AT:
                    notes.append(f"{language} {charset} {'plain + HTML' if alternative else 'plain'}"
                                 f" {result.score}: {', '.join(result.evidence(5)[0])}")
            print(f"| {language} | {charset} | {scores[0]} | {scores[1]} |")
    for note in notes:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
