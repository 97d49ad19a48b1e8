// placeholder until the runc CPI lands
