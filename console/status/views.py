"""Status page: read-only, open to both administrator roles."""

from flask import render_template

from console.roles import Access, requires
from console.status import bp
from console.status.chart import traffic_chart_svg
from console.status.service import status_view


@bp.route("/")
@requires(Access.REPORTS)
def index():
    view = status_view()
    return render_template("status/index.html", view=view,
                           chart=traffic_chart_svg(view.traffic))
