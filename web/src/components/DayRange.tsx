import { useState } from 'react';

const isoDay = (date: Date) => date.toISOString().slice(0, 10);

/** A range of whole UTC days picked in two date fields: the last `days` days (today included) at first. */
export type DayRange = {
  fromDay: string;
  toDay: string;
  setFromDay(day: string): void;
  setToDay(day: string): void;
  /** Both days set, the first not after the last. */
  valid: boolean;
  /** [fromDay 00:00, toDay 24:00) UTC as ISO timestamps; today alone while the fields are not `valid`. */
  from: string;
  to: string;
};

export function useDayRange(days: number): DayRange {
  const [fromDay, setFromDay] = useState(() => isoDay(new Date(Date.now() - (days - 1) * 86_400_000)));
  const [toDay, setToDay] = useState(() => isoDay(new Date()));
  const valid = Boolean(fromDay && toDay && fromDay <= toDay);
  const today = isoDay(new Date());
  const from = new Date(`${valid ? fromDay : today}T00:00:00.000Z`);
  const to = new Date(`${valid ? toDay : today}T00:00:00.000Z`);
  to.setUTCDate(to.getUTCDate() + 1);
  return { fromDay, toDay, setFromDay, setToDay, valid, from: from.toISOString(), to: to.toISOString() };
}

/** The "From" and "To" fields of a {@link DayRange}; `onChange` runs after either changes. */
export function DayRangeFields({ id, range, onChange }: { id: string; range: DayRange; onChange?(): void }) {
  return (
    <>
      <div className="field">
        <label htmlFor={`${id}-from`}>From</label>
        <input
          id={`${id}-from`}
          type="date"
          value={range.fromDay}
          max={range.toDay}
          onChange={(e) => {
            range.setFromDay(e.target.value);
            onChange?.();
          }}
        />
      </div>
      <div className="field">
        <label htmlFor={`${id}-to`}>To</label>
        <input
          id={`${id}-to`}
          type="date"
          value={range.toDay}
          min={range.fromDay}
          onChange={(e) => {
            range.setToDay(e.target.value);
            onChange?.();
          }}
        />
      </div>
    </>
  );
}

/** What the fields say when the range is not valid (nothing while it is). */
export function DayRangeError({ range }: { range: DayRange }) {
  return range.valid ? null : <p className="field-error">The start day must not be after the end day.</p>;
}
