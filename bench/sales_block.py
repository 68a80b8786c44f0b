import io
import pandas as pd
csv = """date,product,region,revenue,units
2024-01-05,widget,north,120.5,3
2024-01-17,gadget,south,80.0,2
2024-02-02,widget,south,200.0,5
2024-02-14,gizmo,north,55.25,1
2024-02-20,gadget,east,160.0,4
2024-03-01,widget,east,240.0,6
2024-03-09,gizmo,south,110.5,2
2024-03-15,gadget,north,95.0,2
2024-03-28,widget,north,130.0,3
2024-04-02,gizmo,east,60.0,1
"""
df = pd.read_csv(io.StringIO(csv), parse_dates=["date"])
print(df.groupby("region")["revenue"].sum().round(2).to_dict())
print(df.groupby(df["date"].dt.to_period("M"))["revenue"].sum().round(2).to_dict())
