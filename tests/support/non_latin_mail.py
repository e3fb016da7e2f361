"""Short mail in six non-Latin scripts, written for the antispam model's conditions on short
non-Latin mail (docs/antispam-model.md, "The prior on the ASCII bytes"): a rev 7 candidate
was withdrawn because a few ASCII bytes of such a message decided its character term, and the
shared corpus has no such ham. Five messages a script: a note, an invoice with a PDF, a link,
a question with a signature and a phone number, a one-word thanks without Date or
Message-ID."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

_PDF = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n" + b"0" * 600
        + b"\n%%EOF\n")

# script: (sender's name, address, [(subject, body[, attachment name])]); the last of each
# is the bare thanks
_MAIL = {
    "el": ("Μαρία Παπαδοπούλου", "maria@example.gr", [
        ("Συνάντηση αύριο", "Γεια σου Νίκο, η συνάντηση μεταφέρεται για αύριο στις 10 το πρωί. "
                            "Τα λέμε εκεί."),
        ("Τιμολόγιο Νοεμβρίου", "Καλησπέρα σας, σας στέλνω συνημμένο το τιμολόγιο του "
                                "Νοεμβρίου. Ευχαριστώ πολύ.", "τιμολόγιο.pdf"),
        ("Φωτογραφίες από το ταξίδι", "Ανέβασα τις φωτογραφίες εδώ: "
                                      "https://photos.example.gr/album/2026-11 Πες μου αν τις "
                                      "βλέπεις."),
        ("Ερώτηση για την παραγγελία", "Καλημέρα, η παραγγελία 4821 έφτασε; Περιμένω νέα σας."
                                       "\n\n--\nΜαρία Παπαδοπούλου\nΛογιστήριο\n"
                                       "Τηλ. +30 210 555 1234"),
        ("Ευχαριστώ", "Ευχαριστώ!")]),
    "ru": ("Иван Петров", "ivan@example.ru", [
        ("Встреча завтра", "Привет, Ольга! Встреча переносится на завтра, на 11 утра. "
                           "До встречи."),
        ("Счёт за ноябрь", "Добрый день, высылаю счёт за ноябрь во вложении. Спасибо.",
         "счёт.pdf"),
        ("Фотографии", "Загрузил фотографии сюда: https://photos.example.ru/album/2026-11 "
                       "Посмотри, пожалуйста."),
        ("Вопрос по заказу", "Здравствуйте, заказ № 4821 уже отправлен? Жду ответа.\n\n--\n"
                             "Иван Петров\nбухгалтерия\nтел. +7 495 555-12-34"),
        ("Спасибо", "Спасибо!")]),
    "ja": ("山田花子", "hanako@example.jp", [
        ("明日の会議", "田中さん、明日の会議は午前10時に変更になりました。よろしくお願いします。"),
        ("11月の請求書", "お世話になっております。11月分の請求書を添付いたします。ご確認ください。",
         "請求書.pdf"),
        ("旅行の写真", "写真をここにアップしました: https://photos.example.jp/album/2026-11 "
                       "見られるか教えてください。"),
        ("注文について", "注文番号4821はもう発送されましたか?ご連絡お待ちしております。\n\n--\n"
                         "山田花子\n経理部\nTel: 03-5555-1234"),
        ("ありがとう", "ありがとうございます。")]),
    "zh": ("李明", "liming@example.cn", [
        ("明天的会议", "王先生,明天的会议改到上午十点。谢谢。"),
        ("十一月发票", "您好,附件是十一月的发票,请查收。谢谢!", "发票.pdf"),
        ("旅行照片", "照片我放在这里了: https://photos.example.cn/album/2026-11 看看能不能打开。"),
        ("关于订单", "您好,订单4821已经发货了吗?等您的回复。\n\n--\n李明\n财务部\n"
                     "电话: +86 10 5555 1234"),
        ("谢谢", "谢谢!")]),
    "ar": ("سارة علي", "sara@example.ae", [
        ("اجتماع الغد", "مرحبا أحمد، تم تأجيل الاجتماع إلى الغد الساعة العاشرة صباحا. شكرا."),
        ("فاتورة نوفمبر", "مساء الخير، مرفق فاتورة شهر نوفمبر. شكرا لكم.", "فاتورة.pdf"),
        ("صور الرحلة", "رفعت الصور هنا: https://photos.example.ae/album/2026-11 أخبرني إن "
                       "كانت تظهر لك."),
        ("سؤال عن الطلب", "صباح الخير، هل تم شحن الطلب رقم 4821؟ بانتظار ردكم.\n\n--\n"
                          "سارة علي\nقسم المحاسبة\nهاتف: +971 4 555 1234"),
        ("شكرا", "شكرا جزيلا!")]),
    "he": ("רונית כהן", "ronit@example.co.il", [
        ("פגישה מחר", "היי דני, הפגישה נדחתה למחר בעשר בבוקר. נתראה."),
        ("חשבונית נובמבר", "שלום, מצורפת החשבונית של חודש נובמבר. תודה.", "חשבונית.pdf"),
        ("תמונות מהטיול", "העליתי את התמונות לכאן: https://photos.example.co.il/album/2026-11 "
                          "תגיד לי אם זה עובד."),
        ("שאלה לגבי ההזמנה", "בוקר טוב, האם הזמנה 4821 כבר נשלחה? מחכה לתשובתכם.\n\n--\n"
                             "רונית כהן\nהנהלת חשבונות\nטל. +972 3 555 1234"),
        ("תודה", "תודה רבה!")]),
}


def short_non_latin_mail(to: str = "office@example.test") -> list[tuple[str, str, bytes]]:
    """(label, sender address, message) for each of the 30 messages."""
    out = []
    for script, (name, address, items) in _MAIL.items():
        for n, (subject, body, *attachment) in enumerate(items):
            message = EmailMessage()
            message["From"] = f"{name} <{address}>"
            message["To"] = to
            message["Subject"] = subject
            if n < len(items) - 1:          # the bare thanks has neither, as clients omit
                message["Date"] = formatdate()
                message["Message-ID"] = make_msgid(domain=address.split("@")[1])
            message.set_content(body + "\n")
            for filename in attachment:
                message.add_attachment(_PDF, maintype="application", subtype="pdf",
                                       filename=filename)
            out.append((f"{script}: {subject}", address, message.as_bytes()))
    return out
