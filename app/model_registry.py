"""Part of the composition root: imports every package's models so Base.metadata has all tables."""

import costs.models  # noqa: F401
import dispatch.models  # noqa: F401
import fleet.models  # noqa: F401
import geofence.models  # noqa: F401
import telematics.models  # noqa: F401
