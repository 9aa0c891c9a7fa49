"""Published demo articles for ``servicedesk demo``, in English, Persian, Russian and
Hebrew (the seed languages). Idempotent: an article whose title exists is left alone."""

from __future__ import annotations

from sqlalchemy import select

from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.kb import service
from servicedesk.kb.models import Article

# title, locale, audience, tags, category (top-level name or None), body
ARTICLES = [
    ("VPN drops every few minutes", "en", "employees", ["vpn", "network"], "Network",
     "If the VPN disconnects again and again:\n\n"
     "1. Restart your home router and wait two minutes.\n"
     "2. Quit the VPN client and start it again.\n"
     "3. Prefer a cable or the 5 GHz Wi-Fi band.\n\n"
     "Still dropping? [Report an incident](/portal/new) and mention the time it happened."),
    ("The printer prints blank pages", "en", "employees", ["printer", "toner"], "Hardware",
     "Blank pages almost always mean an empty **toner cartridge**. Replacement cartridges "
     "are in the supply cupboard next to each printer; the display shows which colour."),
    ("Restarting the VPN concentrator", "en", "agents", ["vpn"], "Network",
     "For IT staff: fail over to the standby node from the firewall console, then restart "
     "the primary. Tell the Service Desk before you start: every session drops."),
    ("بازنشانی رمز عبور", "fa", "employees", ["رمز عبور", "ورود"], "Access",
     "اگر رمز عبور خود را فراموش کرده‌اید:\n\n"
     "1. در صفحه‌ی ورود روی «فراموشی رمز» کلیک کنید.\n"
     "2. نام کاربری خود را وارد کنید.\n"
     "3. پیوندی که به ایمیل شما فرستاده می‌شود را باز کنید و رمز تازه بسازید.\n\n"
     "رمز تازه باید دست‌کم دوازده نویسه داشته باشد."),
    ("Не работает общий почтовый ящик", "ru", "employees", ["почта", "outlook"], "Software",
     "Если общий почтовый ящик не открывается в Outlook:\n\n"
     "1. Закройте Outlook.\n"
     "2. Откройте его снова и подождите несколько минут, пока ящик синхронизируется.\n"
     "3. Проверьте, что у вас есть доступ: попросите владельца ящика выдать права.\n\n"
     "Если ничего не помогло, создайте обращение и укажите адрес ящика."),
    ("חיבור לרשת האלחוטית במשרד", "he", "employees", ["wifi", "רשת"], "Network",
     "כדי להתחבר לרשת האלחוטית במשרד:\n\n"
     "1. בחרו את הרשת Office-WiFi.\n"
     "2. הזינו את שם המשתמש והסיסמה של המחשב.\n"
     "3. אשרו את האישור של החברה אם מופיעה שאלה.\n\n"
     "אורחים מתחברים לרשת Guest-WiFi עם הקוד שבקבלה."),
]


def seed_kb_articles(author: User, publisher: User) -> None:
    """Write each demo article as ``author`` and publish it as ``publisher``."""
    from servicedesk.tickets.models import Category

    for title, locale, audience, tags, category, body in ARTICLES:
        if db.session.scalar(select(Article.id).where(Article.title == title)) is not None:
            continue
        data = {"title": title, "body": body, "locale": locale, "audience": audience,
                "tags": tags}
        if category:
            found = db.session.scalar(select(Category.id).where(
                Category.name == category, Category.parent_id.is_(None)))
            if found is not None:
                data["category_id"] = found
        article = service.create_article(author, data)
        service.transition_article(author, article.id, "review")
        service.transition_article(publisher, article.id, "published")
