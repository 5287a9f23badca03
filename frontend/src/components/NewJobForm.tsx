import { useId, useState, type FormEvent } from "react";
import type { AppConfig } from "../api/types";
import { delayChoices, formatDelay } from "../jobs/format";

const FALLBACK = { min_delay: 5, max_delay: 300, delay_step: 5 };

/** "New job" with an optional delay (random unless one is chosen). */
export function NewJobForm({ config, onCreate }: { config: AppConfig | null; onCreate: (delay: number | null) => void }) {
  const selectId = useId();
  const [choice, setChoice] = useState("random");
  const { min_delay, max_delay, delay_step } = config ?? FALLBACK;
  const choices = delayChoices(min_delay, max_delay, delay_step);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    const delay = choice === "random" ? null : Number(choice);
    onCreate(delay !== null && Number.isFinite(delay) ? delay : null);
  };

  return (
    <form className="new-job" onSubmit={submit}>
      <div className="field">
        <label htmlFor={selectId}>Delay</label>
        <select id={selectId} value={choice} onChange={(e) => setChoice(e.target.value)} data-testid="delay">
          <option value="random">
            Random ({formatDelay(min_delay)} – {formatDelay(max_delay)})
          </option>
          {choices.map((seconds) => (
            <option key={seconds} value={String(seconds)}>
              {formatDelay(seconds)}
            </option>
          ))}
        </select>
      </div>
      <button type="submit" className="btn btn--primary" data-testid="new-job">
        <span aria-hidden="true">+</span> New job
      </button>
    </form>
  );
}
