"""The offline demo source: hand-drawn food illustrations, no network, no key.

Used when no Unsplash access key is set, so the system runs out of the box.
Its results have the same shape as Unsplash's and are clearly labelled as
demo, in the API and on the page.
"""

from __future__ import annotations

import secrets
from typing import Any

from jobs.photos.results import URL_SIZES, PhotoBatch, check_app_name, check_count, unsplash_link

# (file name under jobs/static/jobs/demo/, title, background colour)
DEMO_DISHES = (
    ("ramen", "A steaming bowl of ramen", "#f3d9b1"),
    ("pizza", "A slice of pepperoni pizza", "#fbe3c4"),
    ("burger", "A cheeseburger with lettuce and tomato", "#cfe8f3"),
    ("sushi", "Salmon and cucumber sushi on a board", "#e3eedd"),
    ("pancakes", "A stack of pancakes with syrup and berries", "#fdf0d5"),
    ("salad", "A green salad bowl with tomatoes and egg", "#f6e7e1"),
    ("donut", "A pink-glazed donut with sprinkles", "#d8ecf6"),
    ("taco", "Two tacos with salsa and lime", "#fce8c8"),
    ("watermelon", "Slices of watermelon on a plate", "#e6f4ea"),
    ("cupcake", "A cupcake topped with a cherry", "#efe4f7"),
)


class DemoSource:
    """Offline stand-in for Unsplash: hand-drawn food illustrations, no network.

    Used when no access key is set. Each photo is clearly labelled as demo
    (``source: "demo"``, photographer "Demo kitchen"), and every call
    returns new photo ids so the pool treats demo photos like real ones.
    """

    name = "demo"
    WIDTH = 800
    HEIGHT = 600

    def __init__(self, *, static_url: str = "/static/", app_name: str) -> None:
        check_app_name(app_name)
        self.static_url = static_url if static_url.endswith("/") else static_url + "/"
        self.app_name = app_name

    def fetch_batch(self, count: int) -> PhotoBatch:
        check_count(count)
        dishes = list(DEMO_DISHES)
        secrets.SystemRandom().shuffle(dishes)
        photos = [self._result(*dishes[index % len(dishes)]) for index in range(count)]
        return PhotoBatch(photos, source=self.name)

    def _result(self, slug: str, title: str, color: str) -> dict[str, Any]:
        image = f"{self.static_url}jobs/demo/{slug}.svg"
        return {
            "photo_id": f"demo-{slug}-{secrets.token_hex(6)}",
            "description": f"{title} (offline demo illustration, not an Unsplash photo)",
            "alt_description": f"Illustration: {title[0].lower()}{title[1:]}",
            "urls": {size: image for size in URL_SIZES},
            "width": self.WIDTH,
            "height": self.HEIGHT,
            "color": color,
            "blur_hash": None,
            "photographer_name": "Demo kitchen",
            "photographer_username": "demo-kitchen",
            "photographer_url": f"{self.static_url}jobs/demo/about.html",
            "photo_url": image,
            "unsplash_url": unsplash_link(self.app_name),
            "source": self.name,
        }
